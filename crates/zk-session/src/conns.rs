//! Every open connection with its counters, for the `stat`, `cons`, `crst` and `dump`
//! four-letter words.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One connection's counters, as ZooKeeper's `ServerCnxn` keeps them.
#[derive(Debug)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The session, 0 before the handshake.
    pub session_id: AtomicI64,
    /// The negotiated timeout.
    pub timeout_ms: AtomicI32,
    /// When the session was established (ms since the epoch).
    pub established_ms: AtomicI64,
    /// Packets received.
    pub received: AtomicU64,
    /// Frames queued for sending (shared with the connection's outbox).
    pub sent: Arc<AtomicU64>,
    last_op: Mutex<&'static str>,
    last_cxid: AtomicI32,
    last_zxid: AtomicI64,
    last_response_ms: AtomicI64,
    last_latency_ms: AtomicU64,
    latency_min_ms: AtomicU64,
    latency_max_ms: AtomicU64,
    latency_total_ms: AtomicU64,
    latency_count: AtomicU64,
}

impl ConnInfo {
    /// Counters for a new connection from `peer`.
    pub fn new(peer: SocketAddr, sent: Arc<AtomicU64>) -> Self {
        ConnInfo {
            peer,
            session_id: AtomicI64::new(0),
            timeout_ms: AtomicI32::new(0),
            established_ms: AtomicI64::new(0),
            received: AtomicU64::new(0),
            sent,
            last_op: Mutex::new("NA"),
            last_cxid: AtomicI32::new(-1),
            last_zxid: AtomicI64::new(-1),
            last_response_ms: AtomicI64::new(0),
            last_latency_ms: AtomicU64::new(0),
            latency_min_ms: AtomicU64::new(u64::MAX),
            latency_max_ms: AtomicU64::new(0),
            latency_total_ms: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
        }
    }

    /// Records a request that was answered: its short op name (ZooKeeper's `lop`), xid, the
    /// zxid of the reply, when, and how long it took.
    pub fn record(&self, op: &'static str, cxid: i32, zxid: i64, now_ms: i64, latency_ms: u64) {
        *self.last_op.lock().unwrap_or_else(|e| e.into_inner()) = op;
        if cxid >= 0 {
            self.last_cxid.store(cxid, Ordering::Relaxed);
        }
        self.last_zxid.store(zxid, Ordering::Relaxed);
        self.last_response_ms.store(now_ms, Ordering::Relaxed);
        self.last_latency_ms.store(latency_ms, Ordering::Relaxed);
        self.latency_min_ms.fetch_min(latency_ms, Ordering::Relaxed);
        self.latency_max_ms.fetch_max(latency_ms, Ordering::Relaxed);
        self.latency_total_ms
            .fetch_add(latency_ms, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// `crst`: resets the counters.
    pub fn reset(&self) {
        self.received.store(0, Ordering::Relaxed);
        self.sent.store(0, Ordering::Relaxed);
        self.latency_min_ms.store(u64::MAX, Ordering::Relaxed);
        self.latency_max_ms.store(0, Ordering::Relaxed);
        self.latency_total_ms.store(0, Ordering::Relaxed);
        self.latency_count.store(0, Ordering::Relaxed);
        self.last_latency_ms.store(0, Ordering::Relaxed);
        *self.last_op.lock().unwrap_or_else(|e| e.into_inner()) = "NA";
        self.last_cxid.store(-1, Ordering::Relaxed);
        self.last_zxid.store(-1, Ordering::Relaxed);
    }

    /// The brief form (`stat`): ` /ip:port[interest](queued=0,recved=N,sent=N)`.
    pub fn brief(&self, interest: u8) -> String {
        format!(
            " /{}[{interest}](queued=0,recved={},sent={}",
            self.peer,
            self.received.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed)
        )
    }

    /// The full form (`cons`); connections without a session get the brief one.
    pub fn full(&self, interest: u8) -> String {
        let sid = self.session_id.load(Ordering::Relaxed);
        let mut s = self.brief(interest);
        if sid != 0 {
            let count = self.latency_count.load(Ordering::Relaxed);
            let min = match self.latency_min_ms.load(Ordering::Relaxed) {
                u64::MAX => 0,
                m => m,
            };
            let avg = self
                .latency_total_ms
                .load(Ordering::Relaxed)
                .checked_div(count)
                .unwrap_or(0);
            s.push_str(&format!(
                ",sid=0x{sid:x},lop={},est={},to={},lcxid=0x{:x},lzxid=0x{:x},lresp={},llat={},minlat={min},avglat={avg},maxlat={}",
                self.last_op.lock().unwrap_or_else(|e| e.into_inner()),
                self.established_ms.load(Ordering::Relaxed),
                self.timeout_ms.load(Ordering::Relaxed),
                self.last_cxid.load(Ordering::Relaxed),
                self.last_zxid.load(Ordering::Relaxed),
                self.last_response_ms.load(Ordering::Relaxed),
                self.last_latency_ms.load(Ordering::Relaxed),
                self.latency_max_ms.load(Ordering::Relaxed),
            ));
        }
        s.push(')');
        s
    }
}

/// The open connections by id.
#[derive(Debug, Default)]
pub struct Registry {
    map: Mutex<BTreeMap<u64, Arc<ConnInfo>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ConnInfo>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a connection.
    pub fn add(&self, id: u64, info: Arc<ConnInfo>) {
        self.lock().insert(id, info);
    }

    /// Removes a connection.
    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Every open connection, by id.
    pub fn all(&self) -> Vec<(u64, Arc<ConnInfo>)> {
        self.lock()
            .iter()
            .map(|(k, v)| (*k, Arc::clone(v)))
            .collect()
    }
}

/// ZooKeeper's short name of an operation for `cons`'s `lop`.
pub fn short_op(opcode: i32) -> &'static str {
    match opcode {
        1 | 15 | 19 | 21 => "CREA",
        2 | 20 => "DELE",
        3 => "EXIS",
        4 => "GETD",
        5 => "SETD",
        6 => "GETA",
        7 => "SETA",
        8 | 12 => "GETC",
        9 => "SYNC",
        11 => "PING",
        14 => "MULT",
        16 => "RECO",
        17 => "CHKW",
        18 => "REMW",
        22 => "MLTR",
        100 => "AUTH",
        101 | 105 => "SETW",
        102 => "SASL",
        103 => "GETE",
        104 => "GETACN",
        106 => "ADDW",
        107 => "HOMI",
        -11 => "CLOS",
        _ => "NA",
    }
}
