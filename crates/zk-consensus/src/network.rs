//! openraft's network over the peer protocol (`wire`): one TCP connection per openraft client
//! (per target), to the address recorded for the target in the membership (`BasicNode.addr`,
//! ZooKeeper's `server.N` host and quorum port). A one-member cluster never sends an RPC.
//!
//! A snapshot goes on a connection of its own, so that a large one never holds up
//! heartbeats and appends: a header frame listing the checkpoint's files, then their bytes,
//! then the receiver's reply once it has installed it (`peer::receive_snapshot`).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkFactory, RaftNetworkV2};

use crate::types::{Snapshot, SnapshotDir, TypeConfig, Vote};
use crate::wire::{self, CallError, PeerClient, PeerReply, PeerRequest, SnapshotHeader};

/// Creates a [`TcpPeer`] per openraft client; `local` is this replica's own address, which
/// its connections come from.
pub(crate) struct TcpNetwork {
    pub(crate) local: Option<std::net::IpAddr>,
}

/// openraft's client for one peer.
pub(crate) struct TcpPeer {
    target: u64,
    client: PeerClient,
    local: Option<std::net::IpAddr>,
}

#[derive(Debug, thiserror::Error)]
#[error("node {target}: {what}")]
struct PeerError {
    target: u64,
    what: String,
}

impl RaftNetworkFactory<TypeConfig> for TcpNetwork {
    type Network = TcpPeer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> TcpPeer {
        TcpPeer {
            target,
            client: PeerClient::new(node.addr.clone(), self.local),
            local: self.local,
        }
    }
}

impl TcpPeer {
    fn error(&self, what: impl ToString) -> PeerError {
        PeerError {
            target: self.target,
            what: what.to_string(),
        }
    }

    async fn call(
        &self,
        req: PeerRequest,
        ttl: Duration,
    ) -> Result<PeerReply, RPCError<TypeConfig>> {
        match tokio::time::timeout(ttl, self.client.call(&req)).await {
            Err(_) => Err(RPCError::Network(NetworkError::new(&self.error(format!(
                "no reply from {} within {ttl:?}",
                self.client.addr()
            ))))),
            Ok(Err(e @ CallError::Connect { .. })) => {
                Err(RPCError::Unreachable(Unreachable::new(&self.error(e))))
            }
            Ok(Err(e)) => Err(RPCError::Network(NetworkError::new(&self.error(e)))),
            Ok(Ok(reply)) => Ok(reply),
        }
    }

    fn unexpected(&self, reply: &PeerReply) -> RPCError<TypeConfig> {
        RPCError::Network(NetworkError::new(
            &self.error(format!("unexpected reply {reply:?}")),
        ))
    }
}

impl RaftNetworkV2<TypeConfig> for TcpPeer {
    type SnapshotData = SnapshotDir;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(PeerRequest::Append(rpc), option.hard_ttl())
            .await?
        {
            PeerReply::Append(Ok(resp)) => Ok(resp),
            PeerReply::Append(Err(e)) => Err(RPCError::Network(NetworkError::new(&self.error(e)))),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(PeerRequest::Vote(rpc), option.hard_ttl()).await? {
            PeerReply::Vote(Ok(resp)) => Ok(resp),
            PeerReply::Vote(Err(e)) => Err(RPCError::Network(NetworkError::new(&self.error(e)))),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let started = std::time::Instant::now();
        let dir = snapshot.snapshot.0.clone();
        let files = list_files(&dir)
            .await
            .map_err(|e| StreamingError::Network(NetworkError::new(&self.error(e))))?;
        let header = SnapshotHeader {
            vote,
            meta: snapshot.meta.clone(),
            files,
        };
        let total = header
            .validate()
            .map_err(|e| StreamingError::Network(NetworkError::new(&self.error(e))))?;
        let budget = SnapshotHeader::time_budget(total);
        let nfiles = header.files.len();
        let send = send_snapshot(self.client.addr(), self.local, &dir, header);
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            r = tokio::time::timeout(budget, send) => r,
        };
        match reply {
            Err(_) => Err(StreamingError::Network(NetworkError::new(&self.error(
                format!("snapshot of {total} bytes not installed within {budget:?}"),
            )))),
            Ok(Err(SendError::Connect(e))) => Err(StreamingError::Unreachable(Unreachable::new(
                &self.error(e),
            ))),
            Ok(Err(SendError::Io(e))) => {
                Err(StreamingError::Network(NetworkError::new(&self.error(e))))
            }
            Ok(Ok(Err(e))) => Err(StreamingError::Network(NetworkError::new(
                &self.error(format!("the receiver refused the snapshot: {e}")),
            ))),
            Ok(Ok(Ok(resp))) => {
                let secs = started.elapsed().as_secs_f64();
                tracing::info!(
                    target_node = self.target,
                    snapshot = %snapshot.meta,
                    bytes = total,
                    files = nfiles,
                    elapsed_ms = (secs * 1000.0) as u64,
                    mib_per_s = format!("{:.1}", total as f64 / (1 << 20) as f64 / secs.max(1e-6)),
                    "snapshot sent and installed"
                );
                Ok(resp)
            }
        }
    }
}

/// The files of a snapshot directory with their lengths, by name.
async fn list_files(dir: &Path) -> std::io::Result<Vec<(String, u64)>> {
    let mut files = Vec::new();
    let mut items = tokio::fs::read_dir(dir).await?;
    while let Some(item) = items.next_entry().await? {
        let meta = item.metadata().await?;
        if !meta.is_file() {
            continue;
        }
        let name = item.file_name().into_string().map_err(|n| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("snapshot file name {n:?}"),
            )
        })?;
        files.push((name, meta.len()));
    }
    files.sort();
    Ok(files)
}

#[derive(Debug)]
enum SendError {
    Connect(std::io::Error),
    Io(std::io::Error),
}

/// Connects to the peer, sends the header and the files, and waits for the reply.
async fn send_snapshot(
    addr: &str,
    local: Option<std::net::IpAddr>,
    dir: &Path,
    header: SnapshotHeader,
) -> Result<Result<SnapshotResponse<TypeConfig>, String>, SendError> {
    let files = header.files.clone();
    let stream = wire::connect(addr, local)
        .await
        .map_err(SendError::Connect)?;
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let frame = wire::encode(0, &PeerRequest::Snapshot(header)).map_err(SendError::Io)?;
    wr.write_all(&frame).await.map_err(SendError::Io)?;
    for (name, len) in &files {
        let file = tokio::fs::File::open(dir.join(name))
            .await
            .map_err(SendError::Io)?;
        // Checkpoint files do not change; a shorter file fails the copy, a longer one is cut
        // at the length announced.
        let mut part = tokio::io::AsyncReadExt::take(file, *len);
        let copied = tokio::io::copy(&mut part, &mut wr)
            .await
            .map_err(SendError::Io)?;
        if copied != *len {
            return Err(SendError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{name}: {copied} of {len} bytes"),
            )));
        }
    }
    wr.flush().await.map_err(SendError::Io)?;
    let reply = wire::read_frame(&mut rd).await.map_err(SendError::Io)?;
    let Some((_, payload)) = reply else {
        return Err(SendError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the receiver closed the connection before replying",
        )));
    };
    match wire::decode::<PeerReply>(&payload).map_err(SendError::Io)? {
        PeerReply::Snapshot(r) => Ok(r),
        other => Err(SendError::Io(std::io::Error::other(format!(
            "unexpected reply to a snapshot: {other:?}"
        )))),
    }
}
