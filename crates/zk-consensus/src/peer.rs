//! The receiving side of the peer protocol: openraft's append-entries and vote RPCs, and the
//! writes and read-index requests that followers forward to the leader.
//!
//! Raft RPCs of one connection are handled in arrival order, one at a time (openraft's client
//! for a target sends them one at a time anyway). A forwarded write is put into the log in
//! arrival order too — so a follower's pipelined writes of one session keep their order —
//! and its reply is sent when it commits, while later requests are already being handled.
//! A snapshot from the leader comes on a connection of its own (see `network`): its files are
//! written into a receiving directory, then handed to openraft to install.
//! The server holds the node only weakly: after `shutdown` it closes its connections.

use std::io;
use std::sync::Weak;

use bytes::Bytes;
use openraft::raft::AppendEntriesResponse;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::types::{Snapshot, SnapshotDir};
use crate::wire::{self, PeerReply, PeerRequest, RemoteFailure, SnapshotHeader};
use crate::{Consensus, ConsensusError, Inner};

fn failure(e: ConsensusError) -> RemoteFailure {
    match e {
        ConsensusError::NotLeader { leader } => RemoteFailure::NotLeader { leader },
        ConsensusError::SessionMoved => RemoteFailure::SessionMoved,
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
            PeerRequest::Append(rpc) => {
                let reply = consensus.inner.raft.append_entries(rpc).await;
                if reply
                    .as_ref()
                    .is_ok_and(|r| !matches!(r, AppendEntriesResponse::HigherVote(_)))
                {
                    consensus.inner.heard_from_leader();
                }
                Some(PeerReply::Append(reply.map_err(|e| e.to_string())))
            }
            PeerRequest::Vote(rpc) => Some(PeerReply::Vote(
                consensus
                    .inner
                    .raft
                    .vote(rpc)
                    .await
                    .map_err(|e| e.to_string()),
            )),
            PeerRequest::Revalidate { session, origin } => Some(PeerReply::Revalidate(
                consensus
                    .claim_session(session, origin, true)
                    .map_err(failure),
            )),
            PeerRequest::Propose { command, origin } => {
                match zk_datatree::Command::decode(Bytes::from(command)) {
                    Err(e) => Some(PeerReply::Propose(Err(RemoteFailure::Failed(format!(
                        "undecodable command: {e}"
                    ))))),
                    Ok(cmd) => match consensus.submit_local(cmd, origin).await {
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
                }
            }
            PeerRequest::Join { id, addr } => {
                Some(PeerReply::Join(consensus.accept_join(id, addr).await))
            }
            PeerRequest::Touch(sessions) => {
                tracing::trace!(count = sessions.len(), "sessions reported by a follower");
                let handler = consensus.inner.touch_handler.get().cloned();
                if let Some(handler) = handler {
                    handler(sessions);
                }
                None
            }
            PeerRequest::Snapshot(header) => {
                match receive_snapshot(&mut rd, &consensus, header).await {
                    Ok(reply) => Some(reply),
                    Err(e) => {
                        tracing::warn!(error = %e, "receiving a snapshot failed; closing the connection");
                        return;
                    }
                }
            }
            PeerRequest::ReadIndex => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let pending = &consensus.inner.pending_read_indexes;
                    pending.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let index = consensus.read_index_local().await;
                    pending.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    let reply = PeerReply::ReadIndex(index.map_err(failure));
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

/// Receives the files announced by `header` from `rd` into a new receiving directory and
/// asks openraft to install the snapshot; returns the reply for the leader. A failed transfer
/// (I/O, the time budget, a file list over the limits) leaves nothing behind.
async fn receive_snapshot(
    rd: &mut OwnedReadHalf,
    consensus: &Consensus,
    header: SnapshotHeader,
) -> io::Result<PeerReply> {
    let total = header
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let budget = SnapshotHeader::time_budget(total);
    let started = std::time::Instant::now();
    let snapshots = consensus.inner.snapshots.clone();
    let dir = tokio::task::spawn_blocking(move || snapshots.receiving_dir())
        .await
        .map_err(io::Error::other)??;
    let files = &header.files;
    let transfer = async {
        for (name, len) in files {
            let mut file = tokio::fs::File::create(dir.join(name)).await?;
            let copied = tokio::io::copy(&mut (&mut *rd).take(*len), &mut file).await?;
            if copied != *len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{name}: {copied} of {len} bytes"),
                ));
            }
            file.sync_all().await?;
        }
        tokio::fs::File::open(&dir).await?.sync_all().await
    };
    let received = match tokio::time::timeout(budget, transfer).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("snapshot of {total} bytes not received within {budget:?}"),
        )),
    };
    if let Err(e) = received {
        let _ = tokio::fs::remove_dir_all(&dir).await;
        return Err(e);
    }
    let received_ms = started.elapsed().as_millis() as u64;
    let meta = header.meta;
    tracing::info!(snapshot = %meta, bytes = total, received_ms, "snapshot received");
    let snapshot = Snapshot {
        meta,
        snapshot: SnapshotDir(dir.clone()),
    };
    let reply = consensus
        .inner
        .raft
        .install_full_snapshot(header.vote, snapshot)
        .await
        .map_err(|e| e.to_string());
    // An installed snapshot was moved to its place; what is left here was not installed.
    if tokio::fs::try_exists(&dir).await.unwrap_or(false) {
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
    Ok(PeerReply::Snapshot(reply))
}
