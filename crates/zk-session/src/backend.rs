//! The seam between the session layer and the replicated state.

use std::future::Future;
use std::pin::Pin;

use zk_datatree::{Command, Node, Session, TreeStore};

/// Why a write or a barrier could not be completed. The client gets CONNECTIONLOSS and its
/// connection is closed; it reconnects with the same session (ARCHITECTURE.md, "Per-session
/// order").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("replication failed: {0}")]
pub struct BackendError(pub String);

impl BackendError {
    const SESSION_MOVED: &'static str = "session moved to another server";

    /// A client's write came through a server that no longer holds the session's connection
    /// (ZooKeeper's SESSIONMOVED: the connection is closed without a reply).
    pub fn session_moved() -> Self {
        BackendError(Self::SESSION_MOVED.to_string())
    }

    /// Whether this is [`BackendError::session_moved`].
    pub fn is_session_moved(&self) -> bool {
        self.0 == Self::SESSION_MOVED
    }
}

/// Read access to the applied tree.
pub trait TreeRead {
    /// The node at `path`.
    fn node(&self, path: &str) -> Option<Node>;
    /// The names of the children of `path`, sorted.
    fn children(&self, path: &str) -> Vec<String>;
    /// The ephemerals of a session, sorted.
    fn ephemerals(&self, session_id: i64) -> Vec<String>;
    /// A session of the replicated session table.
    fn session(&self, session_id: i64) -> Option<Session>;
}

/// Visits `root` and every node below it (depth first; children in name order).
pub fn walk(tree: &dyn TreeRead, root: &str, mut visit: impl FnMut(&str)) {
    let mut stack = vec![root.to_string()];
    while let Some(p) = stack.pop() {
        visit(&p);
        for name in tree.children(&p).into_iter().rev() {
            stack.push(zk_datatree::child_path(&p, &name));
        }
    }
}

impl<T: TreeStore> TreeRead for T {
    fn node(&self, path: &str) -> Option<Node> {
        TreeStore::node(self, path)
    }
    fn children(&self, path: &str) -> Vec<String> {
        TreeStore::children(self, path)
    }
    fn ephemerals(&self, session_id: i64) -> Vec<String> {
        TreeStore::ephemerals(self, session_id)
    }
    fn session(&self, session_id: i64) -> Option<Session> {
        TreeStore::session(self, session_id)
    }
}

/// A write in flight: resolves with its zxid once it has been committed and applied here.
pub type Pending = Pin<Box<dyn Future<Output = Result<i64, BackendError>> + Send>>;

/// What the session layer needs from consensus and storage. The backend calls
/// [`crate::Hub::on_applied`] for every applied command, in log order, while it holds the
/// lock that [`Backend::read`] takes for reading: so a read and the watch it registers are
/// atomic with respect to apply and watch delivery.
pub trait Backend: Send + Sync + 'static {
    /// Submits a command; resolves once it has its place in the log order (so commands
    /// submitted one after another apply in that order), with the [`Pending`] write.
    fn submit(&self, cmd: Command) -> impl Future<Output = Result<Pending, BackendError>> + Send;

    /// Proposes a command; resolves with its zxid after it has been committed and applied
    /// here (so its reply has been routed already).
    fn propose(&self, cmd: Command) -> impl Future<Output = Result<i64, BackendError>> + Send {
        async move { self.submit(cmd).await?.await }
    }
    /// [`Backend::submit`] for a write of a client connected here: in an ensemble the leader
    /// refuses it ([`BackendError::session_moved`]) once the session's connection has moved to
    /// another server.
    fn submit_client(
        &self,
        cmd: Command,
    ) -> impl Future<Output = Result<Pending, BackendError>> + Send {
        self.submit(cmd)
    }
    /// A client reconnected here with an existing session: in an ensemble, tells the leader
    /// that the session's connection is on this server now (ZooKeeper's revalidation).
    fn claim_session(
        &self,
        session_id: i64,
    ) -> impl Future<Output = Result<(), BackendError>> + Send {
        let _ = session_id;
        async { Ok(()) }
    }
    /// Resolves once this server has applied everything committed before the call (`sync`).
    fn read_barrier(&self) -> impl Future<Output = Result<i64, BackendError>> + Send;
    /// The zxid of the last applied entry.
    fn last_applied(&self) -> i64;
    /// Resolves to whether this server has applied `zxid`, waiting at most `timeout` for it.
    fn wait_applied(
        &self,
        zxid: i64,
        timeout: std::time::Duration,
    ) -> impl Future<Output = bool> + Send {
        let _ = timeout;
        let done = self.last_applied() >= zxid;
        async move { done }
    }
    /// Runs `f` against the applied tree, excluding apply while it runs.
    fn read<T>(&self, f: impl FnOnce(&dyn TreeRead) -> T) -> T;
    /// Every session of the replicated session table, with its timeout (used at start-up to
    /// give each a fresh full timeout).
    fn sessions(&self) -> Vec<(i64, Session)>;
    /// Whether this server leads the ensemble: only the leader expires sessions and reaps
    /// containers. A single server always leads.
    fn is_leader(&self) -> bool {
        true
    }
    /// Whether a leader is known (a single server always is one).
    fn has_leader(&self) -> bool {
        true
    }
    /// Reports sessions kept alive by this server's clients to the leader (followers only).
    fn touch_leader(&self, sessions: Vec<i64>) -> impl Future<Output = ()> + Send {
        let _ = sessions;
        async {}
    }
    /// `leader` or `follower` in an ensemble (for `srvr`, `stat`, `mntr`); `None` leaves the
    /// configured mode (`standalone`).
    fn role(&self) -> Option<&'static str> {
        None
    }
    /// An ensemble member's quorum figures (`mntr`, the leader's proposal sizes in `srvr`);
    /// `None` on a single server.
    fn quorum(&self) -> Option<QuorumStats> {
        None
    }
    /// The number of nodes in the tree (system nodes included). The default walks the tree.
    fn node_count(&self) -> usize {
        let mut count = 0;
        self.read(|tree| walk(tree, "/", |_| count += 1));
        count
    }
}

/// An ensemble member's quorum figures, as ZooKeeper's `mntr` reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumStats {
    /// Voting members (`zk_quorum_size`).
    pub quorum_size: usize,
    /// The leader's figures; `None` on a follower.
    pub leader: Option<LeaderQuorumStats>,
}

/// What ZooKeeper's leader adds to `mntr`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderQuorumStats {
    /// Followers and observers connected to the leader (`zk_learners`).
    pub learners: usize,
    /// Followers past their initial sync (`zk_synced_followers`).
    pub synced_followers: usize,
    /// Observers past their initial sync (`zk_synced_observers`).
    pub synced_observers: usize,
    /// Followers' `sync` requests not answered yet (`zk_pending_syncs`).
    pub pending_syncs: u64,
    /// Milliseconds since this server became leader (`zk_leader_uptime`).
    pub leader_uptime_ms: u64,
    /// Last, smallest and largest proposal in bytes; `None` before the first (ZooKeeper
    /// prints -1).
    pub proposal_sizes: Option<(u64, u64, u64)>,
}
