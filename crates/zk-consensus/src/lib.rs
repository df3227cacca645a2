//! ferrokeeper's consensus: openraft over `zk-storage`, behind a small API of our own
//! ([`Consensus`]: `propose`, `read_barrier`, `is_leader`, `last_applied`).
//!
//! Owns: the openraft type configuration and its encodings (log entries, log ids, votes,
//! membership), openraft's log-storage and state-machine traits on `zk_storage::LogStore` and
//! `zk_storage::StateStore`, the apply loop (one `StateStore::apply_batch` per openraft apply
//! call, zxid = log index, listener called under the apply gate), snapshots as checkpoint
//! directories, the leader's clock for `Command::time_ms`, starting a node (a one-member
//! cluster, or a member of an ensemble), the peer transport, and forwarding a follower's
//! writes, read barriers and session reports to the leader.
//! Does not own: what a command does (`zk-datatree`), the storage layout (`zk-storage`),
//! sessions, watches and replies (`zk-session`, through [`ApplyListener`]). This is the only
//! crate that names openraft, so that alpha upgrades stay here.
//!
//! A replica behind the leader's purged log catches up by snapshot: the leader streams its
//! newest checkpoint's files on a connection of their own (`network`, `peer`), the replica
//! installs it in place of its tree and tells the listener ([`ApplyListener::reset`]).
//!
//! Observers are openraft learners that the leader adds to the membership.
//!
//! Membership changes: ZooKeeper's `reconfig` on the leader, mapped onto openraft's
//! membership (participants voters, observers learners), and new servers joining as
//! learners first (`reconfig`).
//!
//! Not yet: leader-conditional writes.
//!
//! # Layout
//! - `types`: the openraft type config and the byte encodings.
//! - `log_storage`: `RaftLogStorage` / `RaftLogReader` on the log store.
//! - `state_machine`: `RaftStateMachine` on the state store, snapshots.
//! - `wire`: the peer protocol (frames, messages, a multiplexed client).
//! - `network`: openraft's network over it.
//! - `peer`: the peer server (raft RPCs, forwarded writes, read indexes, session reports).
//! - `reconfig`: reconfig on the leader, joining as a learner.
//!
//! # On-disk layout
//! `log_dir/log` holds the log's RocksDB, `state_dir/tree` the state machine's RocksDB and
//! `state_dir/snapshots` the snapshot checkpoints (on the same file system as the tree, as
//! checkpoints hard-link its files). The subdirectories let `log_dir` and `state_dir` be the
//! same directory, as ZooKeeper's `dataLogDir` defaults to `dataDir`.

mod log_storage;
mod network;
mod peer;
mod reconfig;
mod state_machine;
mod types;
mod wire;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{
    ClientWriteError, Fatal, InitializeError, LinearizableReadError, RaftError,
};
use openraft::impls::ProgressResponder;
use openraft::{BasicNode, Raft, ReadPolicy, ServerState, SnapshotPolicy};
use zk_storage::{LogStore, StateStore, StorageError};

use crate::log_storage::LogStorage;
use crate::network::TcpNetwork;
use crate::state_machine::{Shared, StateMachine, read_applied_meta};
use crate::types::{LogCommand, TypeConfig};
use crate::wire::{PeerClient, PeerReply, PeerRequest, RemoteFailure};

/// Where the log's RocksDB lives under `log_dir`.
const LOG_SUBDIR: &str = "log";
/// Where the state machine's RocksDB lives under `state_dir`.
const STATE_SUBDIR: &str = "tree";
/// Where snapshots live under `state_dir`.
const SNAPSHOT_SUBDIR: &str = "snapshots";
/// The address recorded for this node in the membership (no peer uses it yet).
const LOCAL_ADDR: &str = "127.0.0.1";
/// How long `start` retries a store whose directory is still locked (a previous instance in
/// this process still closing).
const LOCK_RETRY: Duration = Duration::from_secs(10);
/// How long `shutdown` waits for openraft's tasks to release the stores.
const RELEASE_WAIT: Duration = Duration::from_secs(10);
/// How long a follower waits for the leader to answer a forwarded write or read index, and
/// then for its own apply to catch up with it.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// ZooKeeper's default `tickTime`, used when the configured one is 0.
const DEFAULT_TICK_MS: u64 = 2000;
/// The shortest election timeouts, whatever the tickTime.
const ELECTION_MIN_FLOOR_MS: u64 = 150;
const ELECTION_MAX_FLOOR_MS: u64 = 300;

/// What [`Consensus::start`] needs.
#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    /// This server's id in the ensemble (ZooKeeper's `myid`).
    pub node_id: u64,
    /// Directory of the Raft log (ZooKeeper's `dataLogDir`); may equal `state_dir`.
    pub log_dir: PathBuf,
    /// Directory of the state machine and its snapshots (ZooKeeper's `dataDir`).
    pub state_dir: PathBuf,
    /// ZooKeeper's `tickTime` in ms: the heartbeat is tick/40 (≥ 20 ms), the election timeout
    /// is tick/8 ..= tick/4 (so 50 ms and 250–500 ms for the default 2000; at least 150–300
    /// ms).
    pub tick_ms: u64,
    /// The ensemble: node id → peer address (`host:port`, ZooKeeper's `server.N` host and
    /// quorum port), this node included. Empty: a one-member cluster without a network.
    pub peers: BTreeMap<u64, String>,
    /// How long `start` waits for a leader and for local apply to catch up; `None` waits as
    /// long as it takes (an ensemble member started before a quorum of its peers).
    pub startup_timeout: Option<Duration>,
    /// The members of `peers` that are observers (ZooKeeper's `:observer` role): openraft
    /// learners, which receive the log and serve reads but do not vote; the leader adds them
    /// to the membership. Empty: every peer votes.
    pub observers: std::collections::BTreeSet<u64>,
    /// ZooKeeper's `snapCount`: log entries between two snapshots. A tenth of it (at least
    /// one entry) stays in the log behind the last snapshot for replicas that lag a little;
    /// one further behind gets the snapshot. 0 means ZooKeeper's default, 100 000.
    pub snap_count: u64,
    /// The ensemble's configuration as `/zookeeper/config` shows it before any reconfig: the
    /// `server.N=...` lines of zoo.cfg (ZooKeeper's format, each ending with a newline or
    /// not). `None`: no reconfig (a standalone server).
    pub dynamic_config: Option<String>,
    /// ZooKeeper's `standaloneEnabled`: a reconfig must then leave at least two participants.
    pub standalone_enabled: bool,
}

/// ZooKeeper's default `snapCount`.
pub const DEFAULT_SNAP_COUNT: u64 = 100_000;

/// Receives every applied command, on every replica. The apply gate is held during the call:
/// an implementation must not take `StateStore::read_gate` (it would deadlock) and may read
/// the store directly, which already shows the whole batch.
pub trait ApplyListener: Send + Sync + 'static {
    /// Called for every applied command in log order, inside StateStore::apply_batch's `after`
    /// (so while the apply gate is held exclusively), after the batch was written.
    ///
    /// It runs on the apply thread and holds up apply and every gated reader: hand work off
    /// instead of blocking. A panic here stops this replica (openraft treats it as a storage
    /// failure).
    fn applied(&self, zxid: i64, cmd: &zk_datatree::Command, applied: &zk_datatree::Applied);

    /// Called when the whole tree was replaced by a snapshot from the leader that ends at
    /// `zxid` (a replica that fell behind the leader's purged log): the commands between the
    /// previous apply and `zxid` were never applied here and will not reach
    /// [`ApplyListener::applied`]. Runs under the apply gate, with the new tree visible; the
    /// same rules as for `applied` hold.
    fn reset(&self, zxid: i64);
}

/// Why a consensus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// This node is not the leader (or stopped being the leader before the entry committed);
    /// `leader` is the leader this node knows of.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader's node id, if known.
        leader: Option<u64>,
    },
    /// [`Consensus::shutdown`] was called, or the node stopped.
    #[error("consensus is shutting down")]
    ShuttingDown,
    /// A client's write came through a server that no longer holds the session's connection
    /// (the client reconnected elsewhere): ZooKeeper's SESSIONMOVED.
    #[error("session moved to another server")]
    SessionMoved,
    /// A store failed to open or to read.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The configuration is not usable.
    #[error("configuration: {0}")]
    Config(String),
    /// `start` found no leader or did not catch up in time; or a forwarded request got no
    /// answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The Raft node stopped on an unrecoverable error (storage failure, panic); this
    /// replica must be restarted (and, if its disk is bad, replaced).
    #[error("fatal: {0}")]
    Fatal(String),
}

impl From<Fatal<TypeConfig>> for ConsensusError {
    fn from(e: Fatal<TypeConfig>) -> Self {
        match e {
            Fatal::Stopped => ConsensusError::ShuttingDown,
            other => ConsensusError::Fatal(other.to_string()),
        }
    }
}

impl From<RaftError<TypeConfig, ClientWriteError<TypeConfig>>> for ConsensusError {
    fn from(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> Self {
        match e {
            RaftError::Fatal(f) => f.into(),
            RaftError::APIError(e) => e.into(),
        }
    }
}

impl From<ClientWriteError<TypeConfig>> for ConsensusError {
    fn from(e: ClientWriteError<TypeConfig>) -> Self {
        match e {
            ClientWriteError::ForwardToLeader(f) | ClientWriteError::LogEntryDiscarded(f) => {
                ConsensusError::NotLeader {
                    leader: f.leader_id,
                }
            }
            other => ConsensusError::Fatal(other.to_string()),
        }
    }
}

impl From<RaftError<TypeConfig, LinearizableReadError<TypeConfig>>> for ConsensusError {
    fn from(e: RaftError<TypeConfig, LinearizableReadError<TypeConfig>>) -> Self {
        match e {
            RaftError::Fatal(f) => f.into(),
            RaftError::APIError(LinearizableReadError::ForwardToLeader(f)) => {
                ConsensusError::NotLeader {
                    leader: f.leader_id,
                }
            }
            // No quorum confirmed this leader: it cannot serve a barrier, like a non-leader.
            RaftError::APIError(LinearizableReadError::QuorumNotEnough(_)) => {
                ConsensusError::NotLeader { leader: None }
            }
        }
    }
}

/// A submitted command: resolves to its zxid once committed and applied locally.
pub type Proposal = std::pin::Pin<Box<dyn Future<Output = Result<i64, ConsensusError>> + Send>>;

impl From<RemoteFailure> for ConsensusError {
    fn from(e: RemoteFailure) -> Self {
        match e {
            RemoteFailure::NotLeader { leader } => ConsensusError::NotLeader { leader },
            RemoteFailure::SessionMoved => ConsensusError::SessionMoved,
            RemoteFailure::Failed(what) => ConsensusError::Fatal(format!("on the leader: {what}")),
        }
    }
}

/// A running consensus node: proposes commands, answers read barriers and applies committed
/// entries to the state store. Cheap to clone. Call [`Consensus::shutdown`] before dropping
/// the last clone; the stores close when the last clone (and the last `state()` handle) is
/// gone.
#[derive(Clone)]
pub struct Consensus {
    inner: Arc<Inner>,
}

struct Inner {
    raft: Raft<TypeConfig, StateMachine>,
    state: Arc<StateStore>,
    shared: Arc<Shared>,
    /// The last `time_ms` stamped; held while the command is handed to openraft, so that log
    /// order and time order agree.
    clock: tokio::sync::Mutex<i64>,
    shutting_down: AtomicBool,
    /// One count per live store handle inside openraft's tasks (see `shutdown`).
    alive: Arc<()>,
    node_id: u64,
    /// In an ensemble: how long a leader may go without a quorum's acknowledgement before
    /// [`Consensus::has_leader`] says it has none (the election timeout's upper bound).
    quorum_timeout: Option<Duration>,
    /// The connection writes and read-index requests are forwarded on: one per leader, so a
    /// session's pipelined writes reach the leader in order.
    forward: tokio::sync::Mutex<Option<(u64, Arc<PeerClient>)>>,
    /// Tells the peer server to stop.
    stop: tokio::sync::watch::Sender<bool>,
    /// Called with the sessions followers report as alive (see [`Consensus::touch_leader`]).
    touch_handler: std::sync::OnceLock<TouchHandler>,
    /// The snapshot directories (the peer server receives snapshots into them).
    snapshots: Arc<state_machine::SnapshotDirs>,
    /// Since when this node leads (None while it does not), kept by `_leader_watch`.
    leading_since: Arc<std::sync::Mutex<Option<Instant>>>,
    _leader_watch: openraft::raft::WatchChangeHandle<TypeConfig>,
    /// Encoded sizes of the commands this node proposed as leader: last, min, max (0 before
    /// the first; min starts at `u64::MAX`).
    proposal_last: AtomicU64,
    proposal_min: AtomicU64,
    proposal_max: AtomicU64,
    /// Read indexes followers asked for that this leader has not answered yet.
    pending_read_indexes: AtomicU64,
    /// Log entries kept behind a snapshot: a follower within this many of the leader's last
    /// entry is replicating from the log.
    keep_behind_snapshot: u64,
    /// This replica's own IP in the ensemble, which its peer connections come from.
    local_ip: Option<std::net::IpAddr>,
    /// Whether this node is an observer (a learner).
    observer: bool,
    /// On the leader: the server each session's connection is on (see `claim_session`).
    owners: Arc<std::sync::Mutex<Owners>>,
    /// When this node last accepted an append (or heartbeat) from a leader, in ms since
    /// `started` (0: never).
    last_append_ms: AtomicU64,
    started: Instant,
    /// Where the reconfig this leader carries out is (see `reconfig::take_turn`).
    reconfig_phase: tokio::sync::watch::Sender<reconfig::ReconfigPhase>,
    /// See [`ConsensusConfig::dynamic_config`].
    dynamic_config: Option<String>,
    /// See [`ConsensusConfig::standalone_enabled`].
    standalone_enabled: bool,
}

impl Inner {
    /// Records an append accepted from the leader (see `hasten_elections`).
    pub(crate) fn heard_from_leader(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_append_ms.store(ms.max(1), Ordering::Relaxed);
    }
}

/// The node behind a background task's weak handle, unless it is gone or shutting down.
fn running(node: &std::sync::Weak<Inner>) -> Option<Arc<Inner>> {
    node.upgrade()
        .filter(|inner| !inner.shutting_down.load(Ordering::Acquire))
}

/// Starts an election as soon as the other voters would grant it after the leader fell silent.
///
/// openraft's followers refuse to vote while their leader lease lasts (the election timeout's
/// upper bound since the last heartbeat), and each follower's own election timer is drawn
/// below that bound, so the first attempt after a leader dies is always refused and the
/// election comes a second timeout later. This task asks for the election once the lease has
/// run out (`lease`, plus `stagger` times this node's rank among the voters other than the
/// silent leader, so that the followers do not split the vote), once per silence. It only
/// hastens what the timers would do anyway.
async fn hasten_elections(
    node: std::sync::Weak<Inner>,
    voters: Vec<u64>,
    lease: Duration,
    stagger: Duration,
    period: Duration,
) {
    let mut fired_for = 0;
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = running(&node) else {
            return;
        };
        let last = inner.last_append_ms.load(Ordering::Relaxed);
        let silent = Duration::from_millis(
            (inner.started.elapsed().as_millis() as u64).saturating_sub(last),
        );
        let leader = {
            let metrics = inner.raft.metrics();
            let m = metrics.borrow_watched();
            if m.state == ServerState::Follower {
                m.current_leader
            } else {
                None
            }
        };
        let Some(leader) = leader else {
            continue;
        };
        let rank = voters
            .iter()
            .filter(|id| **id != leader)
            .position(|id| *id == inner.node_id)
            .unwrap_or(voters.len()) as u32;
        if last == 0 || last == fired_for || silent < lease + stagger * rank {
            continue;
        }
        fired_for = last;
        tracing::info!(
            silent_ms = silent.as_millis() as u64,
            "no heartbeat from the leader for its whole lease: starting an election"
        );
        if inner.raft.trigger().elect(false).await.is_err() {
            return;
        }
    }
}

/// The leader's table of session owners.
struct Owners {
    table: std::collections::HashMap<i64, u64>,
    /// The size at which closed sessions are pruned next.
    prune_at: usize,
}

/// The smallest size at which the owners table is pruned.
const OWNERS_PRUNE_MIN: usize = 1024;

/// An ensemble member's replication figures (ZooKeeper's `mntr` quorum rows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationStats {
    /// The number of voting members.
    pub voters: usize,
    /// What only the leader knows; `None` on a follower.
    pub leader: Option<LeaderStats>,
}

/// The leader's view of its followers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderStats {
    /// Followers and observers that acknowledged this leader within the election timeout
    /// (ZooKeeper's learners: those connected to the leader).
    pub followers: usize,
    /// Of those, the ones replicating from the log close behind the leader — within the
    /// log tail kept behind a snapshot, so not waiting for a snapshot (ZooKeeper's synced
    /// followers: those past their initial sync).
    pub synced_followers: usize,
    /// The same for observers.
    pub synced_observers: usize,
    /// Read indexes (`sync`) followers are waiting for.
    pub pending_syncs: u64,
    /// How long this node has led.
    pub leading_for: Duration,
    /// Last, smallest and largest proposal in bytes; `None` before the first.
    pub proposal_sizes: Option<(u64, u64, u64)>,
}

/// Receives session ids that a follower's clients kept alive.
pub type TouchHandler = Arc<dyn Fn(Vec<i64>) + Send + Sync>;

/// Opens a store on the blocking pool, retrying while its directory is locked by an
/// instance of this process that is still closing.
async fn open_store<S: Send + 'static>(
    open: impl Fn() -> Result<S, StorageError> + Send + Sync + 'static,
) -> Result<S, ConsensusError> {
    let open = Arc::new(open);
    let deadline = Instant::now() + LOCK_RETRY;
    loop {
        let attempt = open.clone();
        let result = tokio::task::spawn_blocking(move || attempt())
            .await
            .map_err(|e| ConsensusError::Fatal(format!("opening a store: {e}")))?;
        match result {
            Err(e) if e.is_lock_busy() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other.map_err(ConsensusError::Storage),
        }
    }
}

/// The leader's side of observers: every `period`, on the leader, adds each configured
/// observer that is not in the membership yet as a learner (ZooKeeper's observers connect to
/// the leader by themselves; openraft's leader replicates to the learners it knows). Ends when
/// the node is dropped.
async fn keep_observers(
    node: std::sync::Weak<Inner>,
    observers: Vec<(u64, String)>,
    period: Duration,
) {
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = running(&node) else {
            return;
        };
        if !inner.raft.is_leader() {
            continue;
        }
        let known: std::collections::BTreeSet<u64> = inner
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect();
        for (id, addr) in &observers {
            if known.contains(id) {
                continue;
            }
            match inner
                .raft
                .add_learner(*id, BasicNode::new(addr), false)
                .await
            {
                Ok(_) => tracing::info!(observer = id, %addr, "observer added as a learner"),
                Err(e) => tracing::debug!(observer = id, error = %e, "adding an observer failed"),
            }
        }
    }
}

/// openraft's configuration derived from ZooKeeper's `tickTime` and `snapCount`.
fn raft_config(tick_ms: u64, snap_count: u64) -> Result<openraft::Config, ConsensusError> {
    let tick = if tick_ms == 0 {
        DEFAULT_TICK_MS
    } else {
        tick_ms
    };
    // Heartbeats every tick/40; elections after an eighth to a quarter of a tick without one
    // (250-500 ms for the default 2000), at least 5 heartbeats and 150 ms; openraft's leader
    // lease, during which followers refuse to vote, is the upper bound.
    let heartbeat = (tick / 40).clamp(20, 500);
    let election_min = (tick / 8).max(heartbeat * 5).max(ELECTION_MIN_FLOOR_MS);
    let election_max = (tick / 4)
        .max(election_min + 2 * heartbeat)
        .max(ELECTION_MAX_FLOOR_MS);
    let snap_count = if snap_count == 0 {
        DEFAULT_SNAP_COUNT
    } else {
        snap_count.max(2)
    };
    let keep = (snap_count / 10).max(1);
    openraft::Config {
        cluster_name: "ferrokeeper".into(),
        heartbeat_interval: heartbeat,
        election_timeout_min: election_min,
        election_timeout_max: election_max,
        // A checkpoint costs the same whatever the log length: snapshot every snapCount
        // entries, and keep a bounded tail of already-snapshotted entries for followers that
        // lag a little. A purge is a RocksDB range deletion, and range tombstones in the log's
        // memtable slow every read of the log until a flush: purge in batches as large as the
        // kept tail (a purge every thousand entries cost a third of the CPU of a write).
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snap_count),
        max_in_snapshot_log_to_keep: keep,
        purge_batch_size: keep.max(1),
        replication_lag_threshold: snap_count * 2,
        // A snapshot is streamed whole on its own connection (network.rs bounds it by its
        // size); this is openraft's budget for the reply once it is installed.
        install_snapshot_timeout: 120_000,
        max_payload_entries: wire::MAX_PAYLOAD_ENTRIES,
        ..openraft::Config::default()
    }
    .validate()
    .map_err(|e| ConsensusError::Config(e.to_string()))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Consensus {
    /// Opens both stores (the log under `log_dir`, the tree under `state_dir`), starts
    /// openraft, initializes a one-member cluster on first start, and returns once this node
    /// leads and its local apply has caught up with everything committed — so that a restart
    /// after `kill -9` serves every acknowledged write. Entries committed but not yet applied
    /// before a crash are re-applied during `start`, and reach the listener.
    pub async fn start(
        config: ConsensusConfig,
        listener: Arc<dyn ApplyListener>,
    ) -> Result<Consensus, ConsensusError> {
        let started = Instant::now();
        let log_dir = config.log_dir.join(LOG_SUBDIR);
        let state_dir = config.state_dir.join(STATE_SUBDIR);
        let log = Arc::new(open_store(move || LogStore::open(&log_dir)).await?);
        let state = Arc::new(open_store(move || StateStore::open(&state_dir)).await?);
        let fatal_io = |e: std::io::Error| ConsensusError::Fatal(e.to_string());
        let (last_applied, _, last_time) = read_applied_meta(&state).map_err(fatal_io)?;
        let shared = Arc::new(Shared {
            last_applied: AtomicI64::new(last_applied.map_or(0, |id| id.index as i64)),
            last_time_ms: AtomicI64::new(last_time),
        });
        let alive = Arc::new(());
        let snapshots = Arc::new(
            state_machine::SnapshotDirs::open(config.state_dir.join(SNAPSHOT_SUBDIR))
                .map_err(fatal_io)?,
        );
        let sm = StateMachine::new(
            state.clone(),
            shared.clone(),
            listener,
            snapshots.clone(),
            alive.clone(),
        )
        .map_err(fatal_io)?;
        let listener = match config.peers.get(&config.node_id) {
            None if config.peers.is_empty() => None,
            None => {
                return Err(ConsensusError::Config(format!(
                    "node {} is not among the peers {:?}",
                    config.node_id, config.peers
                )));
            }
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                ConsensusError::Config(format!("cannot listen for peers on {addr}: {e}"))
            })?),
        };
        let raft_cfg = raft_config(config.tick_ms, config.snap_count)?;
        let quorum_timeout =
            (config.peers.len() > 1).then(|| Duration::from_millis(raft_cfg.election_timeout_max));
        let keep_behind_snapshot = raft_cfg.max_in_snapshot_log_to_keep;
        let heartbeat_ms = raft_cfg.heartbeat_interval;
        let election_max_ms = raft_cfg.election_timeout_max;
        // Connections to peers come from this replica's own address (when it is an IP).
        let local_ip = config
            .peers
            .get(&config.node_id)
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified());
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_cfg),
            TcpNetwork { local: local_ip },
            LogStorage::new(log, alive.clone()),
            sm,
        )
        .await?;
        let leading_since: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
        let owners = Arc::new(std::sync::Mutex::new(Owners {
            table: Default::default(),
            prune_at: OWNERS_PRUNE_MIN,
        }));
        let (on_start, on_stop) = (leading_since.clone(), leading_since.clone());
        let new_owners = owners.clone();
        let leader_watch = raft.on_leader_change(
            move |_| {
                *on_start.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                new_owners
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .table
                    .clear();
                async {}
            },
            move |_| {
                *on_stop.lock().unwrap_or_else(|e| e.into_inner()) = None;
                async {}
            },
        );
        let consensus = Consensus {
            inner: Arc::new(Inner {
                raft,
                state,
                shared,
                clock: tokio::sync::Mutex::new(last_time),
                shutting_down: AtomicBool::new(false),
                alive,
                node_id: config.node_id,
                quorum_timeout,
                forward: tokio::sync::Mutex::new(None),
                stop: tokio::sync::watch::Sender::new(false),
                touch_handler: std::sync::OnceLock::new(),
                snapshots,
                leading_since,
                _leader_watch: leader_watch,
                proposal_last: AtomicU64::new(0),
                proposal_min: AtomicU64::new(u64::MAX),
                proposal_max: AtomicU64::new(0),
                pending_read_indexes: AtomicU64::new(0),
                keep_behind_snapshot,
                local_ip,
                observer: config.observers.contains(&config.node_id),
                owners,
                last_append_ms: AtomicU64::new(0),
                started: Instant::now(),
                reconfig_phase: tokio::sync::watch::Sender::default(),
                dynamic_config: config.dynamic_config.clone(),
                standalone_enabled: config.standalone_enabled,
            }),
        };
        if let Some(listener) = listener {
            tokio::spawn(peer::serve(
                listener,
                Arc::downgrade(&consensus.inner),
                consensus.inner.stop.subscribe(),
            ));
        }
        let voters: Vec<u64> = config
            .peers
            .keys()
            .filter(|id| !config.observers.contains(id))
            .copied()
            .collect();
        if voters.contains(&config.node_id) && voters.len() > 1 {
            tokio::spawn(hasten_elections(
                Arc::downgrade(&consensus.inner),
                voters,
                Duration::from_millis(election_max_ms),
                Duration::from_millis(2 * heartbeat_ms),
                Duration::from_millis(heartbeat_ms / 2),
            ));
        }
        if !config.observers.is_empty() {
            let observers: Vec<(u64, String)> = config
                .peers
                .iter()
                .filter(|(id, _)| config.observers.contains(id))
                .map(|(id, addr)| (*id, addr.clone()))
                .collect();
            tokio::spawn(keep_observers(
                Arc::downgrade(&consensus.inner),
                observers,
                Duration::from_millis(heartbeat_ms * 5),
            ));
        }
        match consensus.join(&config).await {
            Ok(()) => {
                tracing::info!(
                    node_id = config.node_id,
                    last_applied = consensus.last_applied(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "consensus started"
                );
                Ok(consensus)
            }
            Err(e) => {
                // Release the stores, so that the caller may retry.
                let _ = consensus.shutdown().await;
                Err(e)
            }
        }
    }

    /// Initializes the cluster if this is a new node (every member may do so, with the same
    /// membership), waits for a leader, then — on the leader — for local apply to reach the
    /// read index, and on every node for the commit to cover its whole durable log
    /// (`wait_for_recovery`): a committed id saved without fsync may be older than what was
    /// acknowledged before a power loss, but every acknowledged entry is in a quorum's fsynced
    /// log, so waiting for the log tail to commit and apply covers it.
    async fn join(&self, config: &ConsensusConfig) -> Result<(), ConsensusError> {
        let raft = &self.inner.raft;
        // A new server finds the ensemble running and joins it as a learner instead of
        // initializing a cluster (observers never initialize: the leader adds them).
        let fresh = !raft.is_initialized().await?;
        let joining = fresh
            && config.peers.len() > 1
            && (self.inner.observer || self.ensemble_running(&config.peers).await);
        if joining {
            tracing::info!("an ensemble is running: joining it as a learner");
            tokio::spawn(reconfig::join_as_learner(
                Arc::downgrade(&self.inner),
                config.peers.clone(),
                Duration::from_millis(
                    raft_config(config.tick_ms, config.snap_count)?.heartbeat_interval * 5,
                ),
            ));
        }
        if fresh && !joining {
            let members: BTreeMap<u64, BasicNode> = if config.peers.is_empty() {
                BTreeMap::from([(config.node_id, BasicNode::new(LOCAL_ADDR))])
            } else {
                config
                    .peers
                    .iter()
                    .filter(|(id, _)| !config.observers.contains(id))
                    .map(|(id, addr)| (*id, BasicNode::new(addr)))
                    .collect()
            };
            match raft.initialize(members).await {
                Ok(()) => {}
                // A peer initialized the cluster first and already reached this node.
                Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                    tracing::debug!(reason = %e, "cluster already initialized by a peer");
                }
                Err(RaftError::Fatal(f)) => return Err(f.into()),
                Err(RaftError::APIError(e)) => {
                    return Err(ConsensusError::Fatal(format!("initialize: {e}")));
                }
            }
        }
        let timeout = config.startup_timeout;
        raft.wait(timeout)
            .metrics(|m| m.current_leader.is_some(), "start: a leader is known")
            .await
            .map_err(|e| ConsensusError::Timeout(e.to_string()))?;
        if config.peers.len() <= 1 {
            raft.wait(timeout)
                .state(ServerState::Leader, "start: become leader")
                .await
                .map_err(|e| ConsensusError::Timeout(e.to_string()))?;
            raft.ensure_linearizable(ReadPolicy::ReadIndex).await?;
        }
        raft.wait_for_recovery(timeout)
            .await
            .map_err(|e| ConsensusError::Timeout(e.to_string()))?;
        Ok(())
    }

    /// Stamps and enqueues a command (see [`Consensus::propose`]) and returns as soon as it
    /// has its place in the log order, with a future that resolves like `propose`. Commands
    /// submitted one after another keep their order, so a session can have several writes in
    /// flight (pipelining) and their fsyncs are shared.
    ///
    /// On a follower the command is forwarded to the leader (on one connection, so that
    /// commands submitted in order are logged in order), and the future resolves once the
    /// entry is committed and applied here too.
    pub async fn submit(&self, cmd: zk_datatree::Command) -> Result<Proposal, ConsensusError> {
        self.submit_from(cmd, None).await
    }

    /// [`Consensus::submit`] for a client's write arriving on this server: the leader refuses
    /// it with [`ConsensusError::SessionMoved`] when the session's connection has moved to
    /// another server since ([`Consensus::claim_session_everywhere`]), as ZooKeeper's leader
    /// checks a request's owner.
    pub async fn submit_client(
        &self,
        cmd: zk_datatree::Command,
    ) -> Result<Proposal, ConsensusError> {
        self.submit_from(cmd, Some(self.inner.node_id)).await
    }

    async fn submit_from(
        &self,
        cmd: zk_datatree::Command,
        origin: Option<u64>,
    ) -> Result<Proposal, ConsensusError> {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(ConsensusError::ShuttingDown);
        }
        if self.inner.raft.is_leader() {
            return self.submit_local(cmd, origin).await;
        }
        let client = self.leader_client().await?;
        let pending = client
            .send(&PeerRequest::Propose {
                command: cmd.encode().to_vec(),
                origin,
            })
            .await
            .map_err(|e| {
                tracing::debug!(error = %e, "forwarding a write failed");
                ConsensusError::NotLeader { leader: None }
            })?;
        let this = self.clone();
        Ok(Box::pin(async move {
            this.forwarded(pending, "a forwarded write", |r| match r {
                PeerReply::Propose(r) => Ok(r),
                other => Err(other),
            })
            .await
        }))
    }

    /// Waits (bounded) for the leader's answer to a forwarded request — a failed connection
    /// means the leader is gone — takes the zxid out of it with `unpack`, and waits until
    /// local apply has reached that zxid.
    async fn forwarded<E>(
        &self,
        reply: impl Future<Output = Result<PeerReply, E>>,
        what: &str,
        unpack: impl FnOnce(PeerReply) -> Result<Result<i64, RemoteFailure>, PeerReply>,
    ) -> Result<i64, ConsensusError> {
        let reply = tokio::time::timeout(FORWARD_TIMEOUT, reply)
            .await
            .map_err(|_| ConsensusError::Timeout(format!("the leader did not answer {what}")))?
            .map_err(|_| ConsensusError::NotLeader { leader: None })?;
        let zxid = unpack(reply)
            .map_err(|other| ConsensusError::Fatal(format!("unexpected peer reply {other:?}")))??;
        self.wait_applied(zxid).await?;
        Ok(zxid)
    }

    /// The client of the current leader's peer server (kept while the leader stays).
    async fn leader_client(&self) -> Result<Arc<PeerClient>, ConsensusError> {
        let raft = &self.inner.raft;
        let leader = raft
            .current_leader()
            .await
            .ok_or(ConsensusError::NotLeader { leader: None })?;
        let mut forward = self.inner.forward.lock().await;
        if let Some((id, client)) = forward.as_ref()
            && *id == leader
        {
            return Ok(Arc::clone(client));
        }
        let addr = raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
            .ok_or(ConsensusError::NotLeader {
                leader: Some(leader),
            })?;
        let client = Arc::new(PeerClient::new(addr, self.inner.local_ip));
        *forward = Some((leader, Arc::clone(&client)));
        Ok(client)
    }

    /// Waits at most `timeout` until local apply has reached `zxid`; returns whether it did.
    pub async fn wait_applied_for(&self, zxid: i64, timeout: Duration) -> bool {
        if self.last_applied() >= zxid {
            return true;
        }
        let reached = self
            .inner
            .raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(zxid.max(0) as u64), "a client's lastZxidSeen")
            .await
            .is_ok();
        reached || self.last_applied() >= zxid
    }

    /// Waits until local apply has reached `zxid`.
    async fn wait_applied(&self, zxid: i64) -> Result<(), ConsensusError> {
        if self.last_applied() >= zxid {
            return Ok(());
        }
        self.inner
            .raft
            .wait(Some(FORWARD_TIMEOUT))
            .applied_index_at_least(Some(zxid as u64), "apply a forwarded write")
            .await
            .map_err(|e| ConsensusError::Timeout(e.to_string()))?;
        Ok(())
    }

    /// [`Consensus::submit`] on the leader: an ensemble's reconfig is carried out
    /// ([`Consensus::reconfigure`]); anything else goes to [`Consensus::submit_plain`].
    pub(crate) async fn submit_local(
        &self,
        cmd: zk_datatree::Command,
        origin: Option<u64>,
    ) -> Result<Proposal, ConsensusError> {
        if self.inner.dynamic_config.is_some() && reconfig::is_reconfig(&cmd) {
            return self.reconfigure(cmd, origin).await;
        }
        Ok(Box::pin(self.submit_plain(cmd, origin).await?))
    }

    /// Checks a client's write against its session's owner (`origin`: the server holding the
    /// connection), stamps and enqueues the command into openraft.
    pub(crate) async fn submit_plain(
        &self,
        mut cmd: zk_datatree::Command,
        origin: Option<u64>,
    ) -> Result<impl Future<Output = Result<i64, ConsensusError>> + Send + 'static, ConsensusError>
    {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(ConsensusError::ShuttingDown);
        }
        if let Some(origin) = origin
            && self.inner.quorum_timeout.is_some()
        {
            self.claim_session(cmd.session_id, origin, false)?;
        }
        let (responder, done) = ProgressResponder::complete_only();
        {
            let mut last = self.inner.clock.lock().await;
            let floor = (*last).max(self.inner.shared.last_time_ms.load(Ordering::Relaxed));
            *last = now_ms().max(floor);
            cmd.time_ms = *last;
            let entry = LogCommand::proposed(cmd);
            let size = entry.bytes.len() as u64;
            self.inner.proposal_last.store(size, Ordering::Relaxed);
            self.inner.proposal_min.fetch_min(size, Ordering::Relaxed);
            self.inner.proposal_max.fetch_max(size, Ordering::Relaxed);
            // Only enqueues into openraft (which assigns log indexes in queue order); the
            // clock stays locked for that, not for the commit.
            self.inner.raft.write(entry).responder(responder).await?;
        }
        Ok(async move {
            match done.await {
                // The responder was dropped without an answer: openraft stopped.
                Err(_) => Err(ConsensusError::ShuttingDown),
                Ok(Ok(response)) => Ok(response.log_id.index as i64),
                Ok(Err(e)) => Err(e.into()),
            }
        })
    }

    /// Proposes a command: stamps `cmd.time_ms` with the leader's wall clock, made
    /// non-decreasing in log order (never below any time already stamped or applied), and
    /// returns the entry's zxid once it is committed (fsynced) and applied locally — the
    /// listener has already been called for it. Fails with `NotLeader` on a non-leader (the
    /// entry may still commit if leadership was lost after it was appended) and
    /// `ShuttingDown` after `shutdown`.
    pub async fn propose(&self, cmd: zk_datatree::Command) -> Result<i64, ConsensusError> {
        self.submit(cmd).await?.await
    }

    /// A read barrier (ReadIndex, not a lease): confirms leadership, then waits until local
    /// apply has reached the read index, which it returns. Every write acknowledged anywhere
    /// before the call is then visible in [`Consensus::state`].
    /// On a follower the leader confirms its leadership and gives the read index, and this
    /// node waits until it has applied up to it.
    pub async fn read_barrier(&self) -> Result<i64, ConsensusError> {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(ConsensusError::ShuttingDown);
        }
        if self.inner.raft.is_leader() {
            return self.read_index_local().await;
        }
        let client = self.leader_client().await?;
        self.forwarded(
            client.call(&PeerRequest::ReadIndex),
            "a read index",
            |r| match r {
                PeerReply::ReadIndex(r) => Ok(r),
                other => Err(other),
            },
        )
        .await
    }

    /// [`Consensus::read_barrier`] on the leader.
    pub(crate) async fn read_index_local(&self) -> Result<i64, ConsensusError> {
        let read = self
            .inner
            .raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await?;
        Ok(read.index() as i64)
    }

    /// The state store, for reads (take its `read_gate` to read and register watches
    /// atomically with respect to apply).
    pub fn state(&self) -> &Arc<StateStore> {
        &self.inner.state
    }

    /// The zxid of the last applied entry (0 before any). It changes together with the tree,
    /// under the apply gate.
    pub fn last_applied(&self) -> i64 {
        self.inner.shared.last_applied.load(Ordering::Acquire)
    }

    /// Whether this node currently leads.
    pub fn is_leader(&self) -> bool {
        !self.inner.shutting_down.load(Ordering::Acquire) && self.inner.raft.is_leader()
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<u64> {
        self.inner.raft.metrics().borrow_watched().current_leader
    }

    /// Whether this node knows a working leader: a follower that knows one, or a leader that
    /// a quorum acknowledged within the last `quorum_timeout` (ZooKeeper's leader gives up
    /// when it has not heard from a quorum for syncLimit ticks; openraft's does not step down
    /// by itself). A one-member group always has one once started.
    pub fn has_leader(&self) -> bool {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return false;
        }
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow_watched();
        match (metrics.current_leader, self.inner.quorum_timeout) {
            (None, _) => false,
            (Some(id), Some(limit)) if id == self.inner.node_id => metrics
                .last_quorum_acked
                .as_ref()
                .is_some_and(|at| openraft::Instant::elapsed(&**at) < limit),
            (Some(_), _) => true,
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// The log's bounds as this node sees them: the last purged index (entries up to it are
    /// only in snapshots), the last snapshot's index and the last log index (0 for none).
    pub fn log_bounds(&self) -> (u64, u64, u64) {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        (
            m.purged.as_ref().map_or(0, |l| l.index),
            m.snapshot.as_ref().map_or(0, |l| l.index),
            m.last_log_index.unwrap_or(0),
        )
    }

    /// On the leader: records that `session`'s connection is on `origin`. With `moved` (a
    /// reconnect) `origin` becomes the owner; otherwise (a write) the first server seen
    /// becomes it and any other fails with [`ConsensusError::SessionMoved`]. A new leader
    /// starts with no owners, as ZooKeeper's does. The table is pruned of closed sessions.
    pub(crate) fn claim_session(
        &self,
        session: i64,
        origin: u64,
        moved: bool,
    ) -> Result<(), ConsensusError> {
        if !self.inner.raft.is_leader() {
            return Err(ConsensusError::NotLeader {
                leader: self.leader(),
            });
        }
        let mut owners = self.inner.owners.lock().unwrap_or_else(|e| e.into_inner());
        match owners.table.get(&session) {
            Some(owner) if *owner != origin && !moved => return Err(ConsensusError::SessionMoved),
            Some(owner) if *owner == origin => return Ok(()),
            _ => {}
        }
        owners.table.insert(session, origin);
        if owners.table.len() >= owners.prune_at {
            let state = &self.inner.state;
            owners
                .table
                .retain(|id, _| state.session(*id).ok().flatten().is_some());
            owners.prune_at = (owners.table.len() * 2).max(OWNERS_PRUNE_MIN);
        }
        Ok(())
    }

    /// A client reconnected here with `session`: makes this server the session's owner on
    /// the leader (asked over the peer connection from a follower), so that writes still
    /// coming through the session's previous server are refused. A no-op on a single server.
    pub async fn claim_session_everywhere(&self, session: i64) -> Result<(), ConsensusError> {
        if self.inner.quorum_timeout.is_none() {
            return Ok(());
        }
        let me = self.inner.node_id;
        if self.inner.raft.is_leader() {
            return self.claim_session(session, me, true);
        }
        let client = self.leader_client().await?;
        let reply = tokio::time::timeout(
            FORWARD_TIMEOUT,
            client.call(&PeerRequest::Revalidate {
                session,
                origin: me,
            }),
        )
        .await
        .map_err(|_| ConsensusError::Timeout("the leader did not answer a revalidation".into()))?
        .map_err(|_| ConsensusError::NotLeader { leader: None })?;
        match reply {
            PeerReply::Revalidate(r) => Ok(r?),
            other => Err(ConsensusError::Fatal(format!(
                "unexpected peer reply {other:?}"
            ))),
        }
    }

    /// Whether this node is an observer (replicates and serves reads, does not vote).
    pub fn is_observer(&self) -> bool {
        self.inner.observer
    }

    /// The replication figures of an ensemble member (`None` for a one-member group, which
    /// ZooKeeper runs standalone).
    pub fn replication_stats(&self) -> Option<ReplicationStats> {
        self.inner.quorum_timeout?;
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let voters = m.membership_config.membership().voter_ids().count();
        let since = *self
            .inner
            .leading_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let progress = (m.state == ServerState::Leader)
            .then(|| self.learner_progress(&m))
            .flatten();
        let leader = match (since, progress) {
            (Some(since), Some((recent, synced))) => {
                let voter_ids: std::collections::BTreeSet<u64> =
                    m.membership_config.membership().voter_ids().collect();
                let synced_followers = synced.iter().filter(|id| voter_ids.contains(id)).count();
                let last_size = self.inner.proposal_last.load(Ordering::Relaxed);
                let proposal_sizes = (last_size > 0).then(|| {
                    (
                        last_size,
                        self.inner.proposal_min.load(Ordering::Relaxed),
                        self.inner.proposal_max.load(Ordering::Relaxed),
                    )
                });
                Some(LeaderStats {
                    followers: recent.len(),
                    synced_followers,
                    synced_observers: synced.len() - synced_followers,
                    pending_syncs: self.inner.pending_read_indexes.load(Ordering::Relaxed),
                    leading_for: since.elapsed(),
                    proposal_sizes,
                })
            }
            _ => None,
        };
        Some(ReplicationStats { voters, leader })
    }

    /// Sets what receives the session ids followers report (once; later calls are ignored).
    pub fn set_touch_handler(&self, handler: TouchHandler) {
        let _ = self.inner.touch_handler.set(handler);
    }

    /// Reports sessions kept alive by this node's clients to the leader, which alone expires
    /// sessions (ZooKeeper's followers ship their touch tables the same way). On the leader
    /// the handler gets them directly. Best effort: a report lost with a leader change is
    /// covered by the full timeout a new leader gives every session.
    pub async fn touch_leader(&self, sessions: Vec<i64>) {
        if sessions.is_empty() || self.inner.shutting_down.load(Ordering::Acquire) {
            return;
        }
        if self.inner.raft.is_leader() {
            if let Some(handler) = self.inner.touch_handler.get() {
                handler(sessions);
            }
            return;
        }
        match self.leader_client().await {
            Ok(client) => {
                if let Err(e) = client.post(&PeerRequest::Touch(sessions)).await {
                    tracing::debug!(error = %e, "reporting sessions to the leader failed");
                }
            }
            Err(e) => tracing::debug!(error = %e, "no leader to report sessions to"),
        }
    }

    /// Stops openraft and waits until its tasks have released the stores. Later calls on any
    /// clone fail with `ShuttingDown`; calling it twice is harmless.
    pub async fn shutdown(&self) -> Result<(), ConsensusError> {
        self.inner.shutting_down.store(true, Ordering::Release);
        self.inner.stop.send_replace(true);
        *self.inner.forward.lock().await = None;
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| ConsensusError::Fatal(format!("shutdown: {e}")))?;
        // openraft's state-machine worker ends after its core; RocksDB releases a directory
        // lock only when the last handle is dropped, so wait for them (bounded).
        let deadline = Instant::now() + RELEASE_WAIT;
        while Arc::strong_count(&self.inner.alive) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Consensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consensus")
            .field("last_applied", &self.last_applied())
            .field("is_leader", &self.is_leader())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_timing_follows_tick_time() {
        let c = raft_config(2000, 0).unwrap();
        assert_eq!(
            (
                c.max_in_snapshot_log_to_keep,
                c.purge_batch_size,
                c.snapshot_policy.clone()
            ),
            (10_000, 10_000, SnapshotPolicy::LogsSinceLast(100_000))
        );
        assert_eq!(
            raft_config(2000, 20).unwrap().max_in_snapshot_log_to_keep,
            2
        );
        assert_eq!(
            (
                c.heartbeat_interval,
                c.election_timeout_min,
                c.election_timeout_max
            ),
            (50, 250, 500)
        );
        let c = raft_config(0, 0).unwrap();
        assert_eq!(c.heartbeat_interval, 50);
        let c = raft_config(100, 0).unwrap();
        assert_eq!(
            (
                c.heartbeat_interval,
                c.election_timeout_min,
                c.election_timeout_max
            ),
            (20, 150, 300)
        );
        let c = raft_config(10_000, 0).unwrap();
        assert_eq!(
            (
                c.heartbeat_interval,
                c.election_timeout_min,
                c.election_timeout_max
            ),
            (250, 1250, 2500)
        );
    }

    struct Ignore;
    impl ApplyListener for Ignore {
        fn applied(&self, _: i64, _: &zk_datatree::Command, _: &zk_datatree::Applied) {}
        fn reset(&self, _: i64) {}
    }

    fn session_cmd() -> zk_datatree::Command {
        zk_datatree::Command::internal(
            0,
            0,
            zk_datatree::Op::CreateSession {
                timeout_ms: 1000,
                server_id: 1,
            },
        )
    }

    fn snapshot_names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(SNAPSHOT_SUBDIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Snapshots are checkpoints named `<index>-<term>` holding their metadata; the last two
    /// are kept, and a restart finds the newest.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snapshots_are_checkpoints_and_the_last_two_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config = ConsensusConfig {
            node_id: 7,
            log_dir: dir.path().join("log"),
            state_dir: dir.path().join("data"),
            tick_ms: 2000,
            peers: BTreeMap::new(),
            startup_timeout: Some(Duration::from_secs(60)),
            observers: Default::default(),
            snap_count: 0,
            dynamic_config: None,
            standalone_enabled: true,
        };
        let c = Consensus::start(config.clone(), Arc::new(Ignore))
            .await
            .unwrap();
        let raft = c.inner.raft.clone();
        let mut built = Vec::new();
        for _ in 0..3 {
            let zxid = c.propose(session_cmd()).await.unwrap();
            raft.trigger().snapshot().await.unwrap();
            raft.wait(Some(Duration::from_secs(10)))
                .snapshot(
                    types::LogId::new(types::CommittedLeaderId::new(1), zxid as u64),
                    "snapshot built",
                )
                .await
                .unwrap();
            built.push(format!("{zxid:020}-{:020}", 1));
        }
        assert_eq!(snapshot_names(&config.state_dir), built[1..].to_vec());
        let newest = config.state_dir.join(SNAPSHOT_SUBDIR).join(&built[2]);
        let copy = StateStore::open_checkpoint(&newest).unwrap();
        assert_eq!(copy.sessions().unwrap().len(), 3);
        drop(copy);

        let last = c.last_applied();
        c.shutdown().await.unwrap();
        drop(c);
        let c = Consensus::start(config.clone(), Arc::new(Ignore))
            .await
            .unwrap();
        assert!(c.last_applied() >= last);
        let snapshot = c.inner.raft.get_snapshot().await.unwrap().unwrap();
        assert_eq!(snapshot.snapshot.0, newest);
        c.shutdown().await.unwrap();
    }
}
