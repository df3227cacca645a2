//! The listener, the session tracker (expiry) and the shared server state.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};
use zk_datatree::{CONFIG_NODE, Command, Op, reapable};
use zk_protocol::{CONTAINER_EPHEMERAL_OWNER, TTL_OWNER_PREFIX};

use crate::backend::{Backend, TreeRead};
use crate::config::SessionConfig;
use crate::connection;
use crate::hub::Hub;

/// Liveness of the sessions this server knows: when each expires unless touched. Not
/// replicated (ARCHITECTURE.md, "Sessions").
#[derive(Debug, Default)]
pub struct Tracker {
    deadlines: Mutex<HashMap<i64, (Instant, Duration)>>,
    /// Sessions touched since a follower last reported to the leader.
    touched: Mutex<std::collections::HashSet<i64>>,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (Instant, Duration)>> {
        self.deadlines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts (or restarts) tracking a session with a full timeout.
    pub fn track(&self, session_id: i64, timeout_ms: i32) {
        let timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
        self.lock()
            .insert(session_id, (Instant::now() + timeout, timeout));
    }

    /// Records activity: the session's deadline moves a full timeout ahead. Returns false for
    /// a session that is not tracked (expired or unknown).
    pub fn touch(&self, session_id: i64) -> bool {
        self.touched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(session_id);
        match self.lock().get_mut(&session_id) {
            Some((deadline, timeout)) => {
                *deadline = Instant::now() + *timeout;
                true
            }
            None => false,
        }
    }

    /// Stops tracking a session.
    pub fn forget(&self, session_id: i64) {
        self.lock().remove(&session_id);
    }

    /// Sessions touched since the last call (a follower's report to the leader).
    fn take_touched(&self) -> Vec<i64> {
        std::mem::take(&mut *self.touched.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect()
    }

    /// Tracks the sessions of the replicated table that are not tracked yet, with a full
    /// timeout, and forgets tracked ones that are gone from it. With `fresh`, every session
    /// gets a full timeout (a new leader, as ZooKeeper's does).
    fn sync_with(&self, table: &[(i64, zk_datatree::Session)], fresh: bool) {
        let now = Instant::now();
        let mut map = self.lock();
        let live: std::collections::HashSet<i64> = table.iter().map(|(id, _)| *id).collect();
        map.retain(|id, _| live.contains(id));
        for (id, s) in table {
            let timeout = Duration::from_millis(u64::try_from(s.timeout_ms).unwrap_or(0));
            if fresh || !map.contains_key(id) {
                map.insert(*id, (now + timeout, timeout));
            }
        }
    }

    /// Removes and returns the sessions whose deadline has passed.
    fn take_expired(&self, now: Instant) -> Vec<i64> {
        let mut map = self.lock();
        let expired: Vec<i64> = map
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            map.remove(id);
        }
        expired
    }

    /// The number of tracked sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything a connection task needs.
#[derive(Debug)]
pub struct Server<B> {
    /// The settings.
    pub config: SessionConfig,
    /// Consensus and storage.
    pub backend: Arc<B>,
    /// Connections, watches and apply routing.
    pub hub: Arc<Hub>,
    /// Session liveness.
    pub tracker: Tracker,
    /// When the server started (for `srvr` and friends).
    pub started: Instant,
    /// Permits for requests in process (`request_throttle_max_requests`), if limited.
    pub throttle: Option<Arc<Semaphore>>,
    /// The wall clock (ms) when the server started: the mtime of an ensemble member's
    /// `/zookeeper/config`, as ZooKeeper writes that node at startup.
    started_ms: i64,
    connections_by_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// The applied tree as a client reads it: on an ensemble member that no reconfig has changed
/// yet, `/zookeeper/config` holds the configuration of zoo.cfg, as ZooKeeper writes that node
/// at startup (outside the log: czxid 0, version and aversion -1, mtime the startup time;
/// mzxid and the `version=` line 0 for a static configuration, and with `reconfigEnabled` the
/// zxid of the configuration, here the initial one, 1). A reconfig writes the node in the
/// tree ([`zk_datatree::Op::Configure`]), which is then shown as it is.
struct ClientView<'a> {
    tree: &'a dyn TreeRead,
    config: &'a str,
    started_ms: i64,
    config_zxid: i64,
}

impl TreeRead for ClientView<'_> {
    fn node(&self, path: &str) -> Option<zk_datatree::Node> {
        let mut node = self.tree.node(path)?;
        if path == CONFIG_NODE && node.data.as_ref().is_none_or(|d| d.is_empty()) {
            let data = format!("{}\nversion={:x}", self.config, self.config_zxid);
            node.data = Some(bytes::Bytes::from(data));
            node.czxid = 0;
            node.mzxid = self.config_zxid;
            node.ctime = 0;
            node.mtime = self.started_ms;
            node.version = -1;
            node.aversion = -1;
        }
        Some(node)
    }
    fn children(&self, path: &str) -> Vec<String> {
        self.tree.children(path)
    }
    fn ephemerals(&self, session_id: i64) -> Vec<String> {
        self.tree.ephemerals(session_id)
    }
    fn session(&self, session_id: i64) -> Option<zk_datatree::Session> {
        self.tree.session(session_id)
    }
}

impl<B: Backend> Server<B> {
    /// Runs `f` against the applied tree as clients read it (see [`Backend::read`]: apply is
    /// excluded while it runs), with an ensemble member's `/zookeeper/config`.
    pub fn read_tree<T>(&self, f: impl FnOnce(&dyn TreeRead) -> T) -> T {
        self.backend
            .read(|tree| match &self.config.ensemble_config {
                None => f(tree),
                Some(config) => f(&ClientView {
                    tree,
                    config,
                    started_ms: self.started_ms,
                    config_zxid: i64::from(self.config.reconfig_enabled),
                }),
            })
    }

    /// Creates the server state. `hub` must be the one the backend reports applies to.
    pub fn new(config: SessionConfig, backend: Arc<B>, hub: Arc<Hub>) -> Arc<Self> {
        let throttle = (config.request_throttle_max_requests > 0)
            .then(|| Arc::new(Semaphore::new(config.request_throttle_max_requests)));
        let server = Arc::new(Server {
            config,
            backend,
            hub,
            tracker: Tracker::default(),
            started: Instant::now(),
            throttle,
            started_ms: wall_clock_ms(),
            connections_by_ip: Mutex::default(),
        });
        // Every session in the replicated table gets a fresh full timeout: its client may be
        // reconnecting right now (after a restart or a leader change).
        for (id, session) in server.backend.sessions() {
            server.tracker.track(id, session.timeout_ms);
        }
        server
    }

    /// Serves clients on `listener` until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let expiry = tokio::spawn(Arc::clone(&self).expire_sessions());
        let reaper = tokio::spawn(Arc::clone(&self).reap_containers());
        let limit = Arc::new(Semaphore::new(self.config.connections_max));
        tokio::select! {
            () = Arc::clone(&self).accept_loop(listener, limit) => {}
            () = shutdown => info!("shutting down"),
        }
        expiry.abort();
        reaper.abort();
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, limit: Arc<Semaphore>) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                warn!(%peer, "too many connections, closing");
                continue;
            };
            if !self.admit(peer) {
                warn!(%peer, "too many connections from this address (maxClientCnxns), closing");
                continue;
            }
            let _ = stream.set_nodelay(true);
            let server = Arc::clone(&self);
            tokio::spawn(async move {
                connection::serve(Arc::clone(&server), stream, peer).await;
                server.release(peer);
                drop(permit);
            });
        }
    }

    /// Counts a connection from `peer` against `maxClientCnxns`.
    fn admit(&self, peer: SocketAddr) -> bool {
        let mut map = self
            .connections_by_ip
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = map.entry(peer.ip()).or_default();
        if self.config.connections_per_ip_max != 0 && *n >= self.config.connections_per_ip_max {
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, peer: SocketAddr) {
        let mut map = self
            .connections_by_ip
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&peer.ip()) {
            *n -= 1;
            if *n == 0 {
                map.remove(&peer.ip());
            }
        }
    }

    /// Deletes empty containers that had children and TTL nodes unmodified for longer than
    /// their TTL, as ZooKeeper's `ContainerManager` does on the leader: every
    /// `znode.container.checkIntervalMs`, at most `znode.container.maxPerMinute`. Apply checks
    /// the conditions again with the command's time.
    async fn reap_containers(self: Arc<Self>) {
        let interval = self.config.container_check_interval_ms.max(10);
        let per_pass = (u64::from(self.config.container_max_per_minute) * interval / 60_000).max(1);
        let mut ticker = tokio::time::interval(Duration::from_millis(interval));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            // Only the leader reaps, as ZooKeeper's ContainerManager runs on the leader.
            if !self.backend.is_leader() {
                continue;
            }
            let now_ms = wall_clock_ms();
            let due: Vec<String> = self.backend.read(|tree| {
                [CONTAINER_EPHEMERAL_OWNER, TTL_OWNER_PREFIX]
                    .into_iter()
                    .flat_map(|marker| tree.ephemerals(marker))
                    .filter(|p| tree.node(p).is_some_and(|n| reapable(&n, now_ms)))
                    .take(usize::try_from(per_pass).unwrap_or(usize::MAX))
                    .collect()
            });
            for path in due {
                let cmd = Command::internal(0, 0, Op::Reap { path });
                if let Err(e) = self.backend.propose(cmd).await {
                    warn!(error = %e, "deleting a container or TTL node failed; retrying later");
                    break;
                }
            }
        }
    }

    /// Whether this server serves clients: a single server always; an ensemble member while
    /// it knows a leader.
    pub fn serving(&self) -> bool {
        self.backend.role().is_none() || self.backend.has_leader()
    }

    /// Closes sessions whose clients went quiet for longer than their timeout, by proposing
    /// CloseSession (which deletes their ephemerals on every replica). In an ensemble only the
    /// leader does, for every session of the table: followers report the sessions their
    /// clients touched, and a new leader gives every session a full timeout.
    async fn expire_sessions(self: Arc<Self>) {
        let period = Duration::from_millis((self.config.tick_ms / 2).max(10));
        let mut ticker = tokio::time::interval(period);
        let mut led = true;
        let mut served = true;
        loop {
            ticker.tick().await;
            // A member that lost its leader disconnects its clients, as ZooKeeper's followers
            // do, so that they move to a server of the majority (new ones are refused).
            let serving = self.serving();
            if served && !serving {
                warn!("no leader: disconnecting clients until one is elected");
                self.hub.kick_all();
            }
            served = serving;
            let touched = self.tracker.take_touched();
            if !self.backend.is_leader() {
                led = false;
                self.backend.touch_leader(touched).await;
                continue;
            }
            if self.backend.role().is_some() {
                self.tracker.sync_with(&self.backend.sessions(), !led);
            }
            led = true;
            for session_id in self.tracker.take_expired(Instant::now()) {
                debug!(
                    session = format_args!("0x{session_id:x}"),
                    "session expired"
                );
                let cmd = Command::internal(session_id, 0, Op::CloseSession);
                if let Err(e) = self.backend.propose(cmd).await {
                    warn!(error = %e, "expiring a session failed; retrying on the next tick");
                    self.tracker.track(session_id, 0);
                }
            }
        }
    }
}

/// Milliseconds since the Unix epoch (the reaper's view of "now"; apply uses the command's).
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
