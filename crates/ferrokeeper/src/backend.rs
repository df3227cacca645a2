//! The session layer's [`Backend`] on top of [`Consensus`] and its [`StateStore`], and the
//! apply listener that hands every applied command to the session layer's [`Hub`].

use std::sync::Arc;

use zk_consensus::{ApplyListener, Consensus};
use zk_datatree::{Applied, Command, Node, Session};
use zk_session::{Backend, BackendError, Hub, Pending, TreeRead};
use zk_storage::StateStore;

/// Routes apply results (replies, watch events) to this server's connections.
pub struct HubListener(pub Arc<Hub>);

impl ApplyListener for HubListener {
    fn applied(&self, zxid: i64, cmd: &Command, applied: &Applied) {
        self.0.on_applied(zxid, cmd, applied);
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

/// [`Backend`] over openraft and RocksDB.
/// Consensus as the session layer's backend; the flag says whether this server is a member
/// of an ensemble (so `srvr` reports leader/follower).
pub struct ConsensusBackend(pub Consensus, pub bool);

impl Backend for ConsensusBackend {
    async fn submit(&self, cmd: Command) -> Result<Pending, BackendError> {
        let pending = self
            .0
            .submit(cmd)
            .await
            .map_err(|e| BackendError(e.to_string()))?;
        Ok(Box::pin(async move {
            pending.await.map_err(|e| BackendError(e.to_string()))
        }))
    }

    async fn read_barrier(&self) -> Result<i64, BackendError> {
        self.0
            .read_barrier()
            .await
            .map_err(|e| BackendError(e.to_string()))
    }

    fn last_applied(&self) -> i64 {
        self.0.last_applied()
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

    fn role(&self) -> Option<&'static str> {
        self.1.then(|| {
            if self.0.is_leader() {
                "leader"
            } else {
                "follower"
            }
        })
    }
}
