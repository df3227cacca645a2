//! The receiving side of the peer protocol: openraft's append-entries and vote RPCs, and the
//! writes and read-index requests that followers forward to the leader.
//!
//! Raft RPCs of one connection are handled in arrival order, one at a time (openraft's client
//! for a target sends them one at a time anyway). A forwarded write is put into the log in
//! arrival order too — so a follower's pipelined writes of one session keep their order —
//! and its reply is sent when it commits, while later requests are already being handled.
//! The server holds the node only weakly: after `shutdown` it closes its connections.

use std::sync::Weak;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::wire::{self, PeerReply, PeerRequest, RemoteFailure};
use crate::{Consensus, ConsensusError, Inner};

fn failure(e: ConsensusError) -> RemoteFailure {
    match e {
        ConsensusError::NotLeader { leader } => RemoteFailure::NotLeader { leader },
        other => RemoteFailure::Failed(other.to_string()),
    }
}

/// Accepts peer connections until `stop` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    node: Weak<Inner>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        tracing::debug!(%peer, "peer connected");
        tokio::spawn(connection(stream, node.clone(), stop.clone()));
    }
}

async fn connection(stream: TcpStream, node: Weak<Inner>, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(wire::write_loop(wr, rx));
    loop {
        let frame = tokio::select! {
            f = wire::read_frame(&mut rd) => f,
            _ = stop.changed() => return,
        };
        let Ok(Some((id, payload))) = frame else {
            return;
        };
        let Ok(req) = wire::decode::<PeerRequest>(&payload) else {
            tracing::warn!("undecodable peer request; closing the connection");
            return;
        };
        let Some(inner) = node.upgrade() else {
            return;
        };
        let consensus = Consensus { inner };
        let reply = match req {
            PeerRequest::Append(rpc) => Some(PeerReply::Append(
                consensus
                    .inner
                    .raft
                    .append_entries(rpc)
                    .await
                    .map_err(|e| e.to_string()),
            )),
            PeerRequest::Vote(rpc) => Some(PeerReply::Vote(
                consensus
                    .inner
                    .raft
                    .vote(rpc)
                    .await
                    .map_err(|e| e.to_string()),
            )),
            PeerRequest::Propose(bytes) => match zk_datatree::Command::decode(Bytes::from(bytes)) {
                Err(e) => Some(PeerReply::Propose(Err(RemoteFailure::Failed(format!(
                    "undecodable command: {e}"
                ))))),
                Ok(cmd) => match consensus.submit_local(cmd).await {
                    Err(e) => Some(PeerReply::Propose(Err(failure(e)))),
                    Ok(done) => {
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let reply = PeerReply::Propose(done.await.map_err(failure));
                            if let Ok(frame) = wire::encode(id, &reply) {
                                let _ = tx.send(frame);
                            }
                        });
                        None
                    }
                },
            },
            PeerRequest::Touch(sessions) => {
                tracing::trace!(count = sessions.len(), "sessions reported by a follower");
                let handler = consensus.inner.touch_handler.get().cloned();
                if let Some(handler) = handler {
                    handler(sessions);
                }
                None
            }
            PeerRequest::ReadIndex => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let reply =
                        PeerReply::ReadIndex(consensus.read_index_local().await.map_err(failure));
                    if let Ok(frame) = wire::encode(id, &reply) {
                        let _ = tx.send(frame);
                    }
                });
                None
            }
        };
        if let Some(reply) = reply {
            match wire::encode(id, &reply) {
                Ok(frame) => {
                    if tx.send(frame).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot encode a peer reply; closing the connection");
                    return;
                }
            }
        }
    }
}
