//! openraft's network over the peer protocol (`wire`): one TCP connection per openraft client
//! (per target), to the address recorded for the target in the membership (`BasicNode.addr`,
//! ZooKeeper's `server.N` host and quorum port). A one-member cluster never sends an RPC.
//!
//! Not yet: snapshot transfer. A follower that fell behind the leader's purged log cannot
//! catch up (the leader keeps `max_in_snapshot_log_to_keep` entries after a snapshot).

use std::future::Future;
use std::time::Duration;

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkFactory, RaftNetworkV2};

use crate::types::{Snapshot, SnapshotDir, TypeConfig, Vote};
use crate::wire::{CallError, PeerClient, PeerReply, PeerRequest};

/// Creates a [`TcpPeer`] per openraft client.
pub(crate) struct TcpNetwork;

/// openraft's client for one peer.
pub(crate) struct TcpPeer {
    target: u64,
    client: PeerClient,
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
            client: PeerClient::new(node.addr.clone()),
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
        _vote: Vote,
        _snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Network(NetworkError::new(&self.error(
            "snapshot transfer between replicas is not implemented yet",
        ))))
    }
}
