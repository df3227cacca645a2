//! The session layer's [`Backend`] on top of [`Consensus`] and its [`StateStore`], and the
//! apply listener that hands every applied command to the session layer's [`Hub`].

use std::sync::Arc;

use zk_consensus::{ApplyListener, Consensus, ConsensusError};
use zk_datatree::{Applied, Command, Node, Session};
use zk_session::{Backend, BackendError, Hub, LeaderQuorumStats, Pending, QuorumStats, TreeRead};
use zk_storage::StateStore;

/// Routes apply results (replies, watch events) to this server's connections.
pub struct HubListener(pub Arc<Hub>);

impl ApplyListener for HubListener {
    fn applied(&self, zxid: i64, cmd: &Command, applied: &Applied) {
        self.0.on_applied(zxid, cmd, applied);
    }

    fn reset(&self, zxid: i64) {
        tracing::info!(
            zxid,
            "tree replaced by a snapshot from the leader: disconnecting this server's clients"
        );
        self.0.reset();
    }
}

/// Reads of the applied tree. A storage read error means the disk failed under us: the server
/// stops rather than answering from a state it cannot read.
struct StateReader<'a>(&'a StateStore);

fn fatal<T>(r: Result<T, zk_storage::StorageError>) -> T {
    r.unwrap_or_else(|e| panic!("state store read failed: {e}"))
}

impl TreeRead for StateReader<'_> {
    fn node(&self, path: &str) -> Option<Node> {
        fatal(self.0.node(path))
    }
    fn children(&self, path: &str) -> Vec<String> {
        fatal(self.0.children(path))
    }
    fn ephemerals(&self, session_id: i64) -> Vec<String> {
        fatal(self.0.ephemerals(session_id))
    }
    fn session(&self, session_id: i64) -> Option<Session> {
        fatal(self.0.session(session_id))
    }
}

fn backend_error(e: ConsensusError) -> BackendError {
    match e {
        ConsensusError::SessionMoved => BackendError::session_moved(),
        other => BackendError(other.to_string()),
    }
}

/// [`Backend`] over openraft and RocksDB.
/// Consensus as the session layer's backend; the flag says whether this server is a member
/// of an ensemble (so `srvr` reports leader/follower).
pub struct ConsensusBackend(pub Consensus, pub bool);

impl Backend for ConsensusBackend {
    async fn submit(&self, cmd: Command) -> Result<Pending, BackendError> {
        let pending = self.0.submit(cmd).await.map_err(backend_error)?;
        Ok(Box::pin(
            async move { pending.await.map_err(backend_error) },
        ))
    }

    async fn submit_client(&self, cmd: Command) -> Result<Pending, BackendError> {
        let pending = self.0.submit_client(cmd).await.map_err(backend_error)?;
        Ok(Box::pin(
            async move { pending.await.map_err(backend_error) },
        ))
    }

    async fn claim_session(&self, session_id: i64) -> Result<(), BackendError> {
        self.0
            .claim_session_everywhere(session_id)
            .await
            .map_err(backend_error)
    }

    async fn read_barrier(&self) -> Result<i64, BackendError> {
        self.0.read_barrier().await.map_err(backend_error)
    }

    fn last_applied(&self) -> i64 {
        self.0.last_applied()
    }

    async fn wait_applied(&self, zxid: i64, timeout: std::time::Duration) -> bool {
        self.0.wait_applied_for(zxid, timeout).await
    }

    fn read<T>(&self, f: impl FnOnce(&dyn TreeRead) -> T) -> T {
        let state = self.0.state();
        let _gate = state.read_gate();
        f(&StateReader(state))
    }

    fn sessions(&self) -> Vec<(i64, Session)> {
        fatal(self.0.state().sessions())
    }

    fn is_leader(&self) -> bool {
        self.0.is_leader()
    }

    async fn touch_leader(&self, sessions: Vec<i64>) {
        self.0.touch_leader(sessions).await;
    }

    fn has_leader(&self) -> bool {
        self.0.has_leader()
    }

    fn quorum(&self) -> Option<QuorumStats> {
        let r = self.0.replication_stats()?;
        Some(QuorumStats {
            quorum_size: r.voters,
            leader: r.leader.map(|l| LeaderQuorumStats {
                learners: l.followers,
                synced_followers: l.synced_followers,
                synced_observers: l.synced_observers,
                pending_syncs: l.pending_syncs,
                leader_uptime_ms: l.leading_for.as_millis() as u64,
                proposal_sizes: l.proposal_sizes,
            }),
        })
    }

    fn node_count(&self) -> usize {
        self.0.state().node_count() as usize
    }

    fn role(&self) -> Option<&'static str> {
        self.1.then(|| {
            if self.0.is_leader() {
                "leader"
            } else if self.0.is_observer() {
                "observer"
            } else {
                "follower"
            }
        })
    }
}
