//! Test support: an in-memory backend (MemStore applied inline, no log: for testing the
//! session layer alone) and a raw-frame client.

#![allow(dead_code)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

#[path = "raw.rs"]
mod raw;
pub use raw::*;
use tokio::net::TcpListener;
use zk_datatree::{Command, MemStore, Session, apply, init_system_nodes};
use zk_session::{Backend, BackendError, Hub, Pending, Server, SessionConfig, TreeRead};

pub struct MemBackend {
    store: RwLock<MemStore>,
    zxid: AtomicI64,
    hub: Arc<Hub>,
    /// How long a write takes to be applied and answered (0: at once).
    pub write_delay: std::time::Duration,
    /// While set, every write fails (as on a server that lost its leader).
    pub fail_writes: std::sync::atomic::AtomicBool,
    me: std::sync::OnceLock<Arc<MemBackend>>,
    /// The delayed writes, applied in order by one task whether or not anyone still waits
    /// for them (as a log would).
    delayed: std::sync::OnceLock<
        tokio::sync::mpsc::UnboundedSender<(
            std::time::Instant,
            Command,
            tokio::sync::oneshot::Sender<i64>,
        )>,
    >,
}

impl MemBackend {
    pub fn new(hub: Arc<Hub>) -> Self {
        let mut store = MemStore::default();
        init_system_nodes(&mut store);
        MemBackend {
            store: RwLock::new(store),
            zxid: AtomicI64::new(0),
            hub,
            write_delay: std::time::Duration::ZERO,
            fail_writes: std::sync::atomic::AtomicBool::new(false),
            me: std::sync::OnceLock::new(),
            delayed: std::sync::OnceLock::new(),
        }
    }
}

impl MemBackend {
    fn apply_now(&self, mut cmd: Command) -> i64 {
        let mut store = self.store.write().unwrap();
        let zxid = self.zxid.fetch_add(1, Ordering::SeqCst) + 1;
        cmd.time_ms = 1_700_000_000_000 + zxid;
        let applied = apply(&mut *store, zxid, &cmd);
        self.hub.on_applied(zxid, &cmd, &applied);
        zxid
    }
}

impl Backend for MemBackend {
    async fn submit(&self, cmd: Command) -> Result<Pending, BackendError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(BackendError("no leader (test)".into()));
        }
        if !self.write_delay.is_zero() {
            // Applied (and answered) only when the delay is over, as a slow log would.
            let queue = self.delayed.get_or_init(|| {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(
                    std::time::Instant,
                    Command,
                    tokio::sync::oneshot::Sender<i64>,
                )>();
                let me = Arc::downgrade(self.me.get().expect("set by start"));
                let delay = self.write_delay;
                tokio::spawn(async move {
                    while let Some((at, cmd, done)) = rx.recv().await {
                        tokio::time::sleep_until((at + delay).into()).await;
                        let Some(me) = me.upgrade() else {
                            return;
                        };
                        let _ = done.send(me.apply_now(cmd));
                    }
                });
                tx
            });
            let (done, applied) = tokio::sync::oneshot::channel();
            queue
                .send((std::time::Instant::now(), cmd, done))
                .map_err(|_| BackendError("the test backend stopped".into()))?;
            return Ok(Box::pin(async move {
                applied
                    .await
                    .map_err(|_| BackendError("the test backend stopped".into()))
            }));
        }
        let zxid = self.apply_now(cmd);
        Ok(Box::pin(std::future::ready(Ok(zxid))))
    }
    async fn read_barrier(&self) -> Result<i64, BackendError> {
        Ok(self.last_applied())
    }
    fn last_applied(&self) -> i64 {
        self.zxid.load(Ordering::SeqCst)
    }
    async fn wait_applied(&self, zxid: i64, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.last_applied() < zxid {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        true
    }
    fn read<T>(&self, f: impl FnOnce(&dyn TreeRead) -> T) -> T {
        let store = self.store.read().unwrap();
        f(&*store)
    }
    fn sessions(&self) -> Vec<(i64, Session)> {
        self.store
            .read()
            .unwrap()
            .sessions()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }
}

/// Starts a server on 127.0.0.1 (any port) with the in-memory backend.
pub async fn start(config: SessionConfig) -> std::net::SocketAddr {
    start_with_write_delay(config, std::time::Duration::ZERO).await
}

/// Like [`start`], with writes reported applied only after `delay`.
pub async fn start_with_write_delay(
    config: SessionConfig,
    delay: std::time::Duration,
) -> std::net::SocketAddr {
    start_with(config, delay).await.0
}

/// Like [`start_with_write_delay`], returning the backend too.
pub async fn start_with(
    config: SessionConfig,
    delay: std::time::Duration,
) -> (std::net::SocketAddr, Arc<MemBackend>) {
    let hub = Arc::new(Hub::default());
    let mut backend = MemBackend::new(Arc::clone(&hub));
    backend.write_delay = delay;
    let backend = Arc::new(backend);
    let _ = backend.me.set(Arc::clone(&backend));
    let server = Server::new(config, Arc::clone(&backend), hub);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.run(listener, std::future::pending()));
    (addr, backend)
}
