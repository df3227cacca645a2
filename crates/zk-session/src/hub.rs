//! The hub: the connections of this server by session, the watch registry, and the routing of
//! apply results (replies and watch events) to the connections that own them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use zk_datatree::{Applied, AuthId, Command, Op, Outcome, check_acl};
use zk_protocol::frame::write_frame;
use zk_protocol::jute::Record;
use zk_protocol::jute::proto::{
    Create2Response, CreateResponse, GetDataResponse, ReplyHeader, SetACLResponse, SetDataResponse,
    WatcherEvent,
};
use zk_protocol::multi::encode_multi_response;
use zk_protocol::watch::KeeperState;
use zk_protocol::{OpCode, perms, xid};

use crate::watches::{WatchKind, Watches};

/// What a connection's writer task receives.
#[derive(Debug)]
pub enum Outbound {
    /// A complete frame to write.
    Frame(Bytes),
    /// Write everything queued before this, then close the connection.
    Close,
}

/// The most bytes a connection may have queued for writing. A client that stops reading while
/// events pile up is disconnected at this point instead of growing the server's memory
/// without bound (its session survives; it can reconnect and re-register its watches).
pub const OUTBOX_BYTES_MAX: usize = 64 << 20;

/// The sending side of a connection's write queue, with its byte budget.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outbound>,
    queued: Arc<AtomicUsize>,
    sent: Arc<AtomicU64>,
}

/// The writer's side of a connection's write queue.
#[derive(Debug)]
pub struct OutboxReceiver {
    rx: mpsc::UnboundedReceiver<Outbound>,
    queued: Arc<AtomicUsize>,
}

impl Outbox {
    /// Creates a connection's write queue; `sent` counts the frames queued.
    pub fn channel(sent: Arc<AtomicU64>) -> (Outbox, OutboxReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        (
            Outbox {
                tx,
                queued: Arc::clone(&queued),
                sent,
            },
            OutboxReceiver { rx, queued },
        )
    }

    /// Queues a frame; past the byte budget the connection is closed instead.
    pub fn frame(&self, frame: Bytes) {
        let len = frame.len();
        if self.queued.fetch_add(len, Ordering::Relaxed) + len > OUTBOX_BYTES_MAX {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            self.close();
            return;
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Outbound::Frame(frame));
    }

    /// Asks the writer to flush what is queued and close the connection.
    pub fn close(&self) {
        let _ = self.tx.send(Outbound::Close);
    }
}

impl OutboxReceiver {
    fn took(&self, item: &Outbound) {
        if let Outbound::Frame(f) = item {
            self.queued.fetch_sub(f.len(), Ordering::Relaxed);
        }
    }

    /// Waits for the next item.
    pub async fn recv(&mut self) -> Option<Outbound> {
        let item = self.rx.recv().await?;
        self.took(&item);
        Some(item)
    }

    /// Takes the next item if one is queued.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        let item = self.rx.try_recv().ok()?;
        self.took(&item);
        Some(item)
    }
}

/// A connection registered for a session.
#[derive(Debug)]
struct Connection {
    id: u64,
    tx: Outbox,
}

#[derive(Debug, Default)]
struct State {
    connections: HashMap<i64, Connection>,
    /// The writes each connection (session, connection id) submitted and awaits the reply
    /// of, by xid. Apply runs on every replica, and a session's connection may have moved
    /// here from another server while its old writes were still in flight: a reply goes only
    /// to the connection that sent the request, as in ZooKeeper.
    awaited: HashMap<(i64, u64), std::collections::HashSet<i32>>,
    /// Each connected session's authenticated ids, for the READ check on watch delivery.
    auth: HashMap<i64, Arc<[AuthId]>>,
    /// Connections waiting for the session they asked for: token → (this server's id, where
    /// the id goes). Every server applies every CreateSession and hands out tokens from 1, so
    /// a token is this server's only together with the server id in the command.
    pending_sessions: HashMap<i32, (u8, oneshot::Sender<i64>)>,
    watches: Watches,
}

/// Server-wide counters reported by the four-letter words.
#[derive(Debug, Default)]
pub struct Stats {
    /// Packets received (requests and pings).
    pub packets_received: AtomicU64,
    /// Packets sent (replies and notifications).
    pub packets_sent: AtomicU64,
    /// Requests being processed.
    pub outstanding: AtomicU64,
    /// Sum of request latencies in µs.
    pub latency_total_us: AtomicU64,
    /// Number of latency samples.
    pub latency_count: AtomicU64,
    /// Smallest request latency in µs (`u64::MAX` before any).
    pub latency_min_us: AtomicU64,
    /// Largest request latency in µs.
    pub latency_max_us: AtomicU64,
}

impl Stats {
    /// `srst`: resets the counters.
    pub fn reset(&self) {
        for c in [
            &self.packets_received,
            &self.packets_sent,
            &self.latency_total_us,
            &self.latency_count,
            &self.latency_max_us,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.latency_min_us.store(u64::MAX, Ordering::Relaxed);
    }

    /// Records one request's latency.
    pub fn record_latency(&self, us: u64) {
        self.latency_total_us.fetch_add(us, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_min_us.fetch_min(us, Ordering::Relaxed);
        self.latency_max_us.fetch_max(us, Ordering::Relaxed);
    }
}

/// Shared by every connection and by the apply listener.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    next_connection: AtomicU64,
    next_token: std::sync::atomic::AtomicI32,
    /// Counters for the four-letter words.
    pub stats: Stats,
    /// Every open connection.
    pub conns: crate::conns::Registry,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            state: Mutex::default(),
            next_connection: AtomicU64::new(1),
            next_token: std::sync::atomic::AtomicI32::new(1),
            stats: Stats {
                latency_min_us: AtomicU64::new(u64::MAX),
                ..Stats::default()
            },
            conns: crate::conns::Registry::default(),
        }
    }
}

/// Appends a reply frame: header, then the body if there is one.
pub fn reply(
    out: &mut BytesMut,
    xid: i32,
    zxid: i64,
    err: i32,
    body: Option<&dyn Fn(&mut BytesMut)>,
) {
    write_frame(out, |b| {
        ReplyHeader { xid, zxid, err }.encode(b);
        if let Some(body) = body {
            body(b);
        }
    });
}

/// The bytes of a reply frame's length prefix and header.
const REPLY_HEADER_LEN: usize = 4 + 16;

/// A reply frame without a body (an error, or a write that answers nothing but its header).
pub fn header_frame(xid: i32, zxid: i64, err: i32) -> Bytes {
    let mut out = BytesMut::with_capacity(REPLY_HEADER_LEN);
    reply(&mut out, xid, zxid, err, None);
    out.freeze()
}

/// A reply frame with `body`, allocated once at its size.
pub fn record_frame(xid: i32, zxid: i64, err: i32, body: &impl Record) -> Bytes {
    let mut out = BytesMut::with_capacity(REPLY_HEADER_LEN + body.encoded_len());
    reply(&mut out, xid, zxid, err, Some(&|b| body.encode(b)));
    out.freeze()
}

/// Encodes the reply to a write from its apply outcome.
fn write_reply(opcode: OpCode, xid: i32, zxid: i64, outcome: &Outcome) -> Bytes {
    match outcome {
        Outcome::Error(code) => header_frame(xid, zxid, code.code()),
        Outcome::Created { path, stat } => {
            if opcode == OpCode::Create {
                let body = CreateResponse {
                    path: Some(path.clone()),
                };
                record_frame(xid, zxid, 0, &body)
            } else {
                let body = Create2Response {
                    path: Some(path.clone()),
                    stat: stat.clone(),
                };
                record_frame(xid, zxid, 0, &body)
            }
        }
        Outcome::DataSet(stat) => {
            record_frame(xid, zxid, 0, &SetDataResponse { stat: stat.clone() })
        }
        Outcome::AclSet(stat) => record_frame(xid, zxid, 0, &SetACLResponse { stat: stat.clone() }),
        Outcome::Multi(results) => {
            let mut out = BytesMut::with_capacity(REPLY_HEADER_LEN + 64 * results.len());
            reply(
                &mut out,
                xid,
                zxid,
                0,
                Some(&|b| encode_multi_response(b, results)),
            );
            out.freeze()
        }
        Outcome::Configured { data, stat } => {
            let body = GetDataResponse {
                data: Some(data.clone()),
                stat: stat.clone(),
            };
            record_frame(xid, zxid, 0, &body)
        }
        Outcome::Deleted | Outcome::SessionClosed | Outcome::SessionCreated { .. } => {
            header_frame(xid, zxid, 0)
        }
    }
}

/// Encodes a watch notification.
pub fn notification(zxid: i64, event: i32, path: &str) -> Bytes {
    let body = WatcherEvent {
        r#type: event,
        state: KeeperState::SyncConnected as i32,
        path: Some(path.to_string()),
    };
    record_frame(xid::NOTIFICATION, zxid, 0, &body)
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns a new connection id.
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a connection that waits for a new session created by this server
    /// (`server_id`, the id its CreateSession command carries); returns the token to put in
    /// the command's xid, and where the session id will arrive.
    pub fn expect_session(&self, server_id: u8) -> (i32, oneshot::Receiver<i64>) {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock().pending_sessions.insert(token, (server_id, tx));
        (token, rx)
    }

    /// Forgets a pending session creation (the connection went away).
    pub fn forget_pending(&self, token: i32) {
        self.lock().pending_sessions.remove(&token);
    }

    /// Attaches a connection to a session. A previous connection of the same session is closed
    /// (the client moved to this one).
    pub fn attach(&self, session_id: i64, connection_id: u64, tx: Outbox) {
        let mut st = self.lock();
        // Watches belong to a connection in ZooKeeper: a new connection starts with none and
        // re-registers them with setWatches.
        st.watches.remove_session(session_id);
        if let Some(old) = st.connections.insert(
            session_id,
            Connection {
                id: connection_id,
                tx,
            },
        ) {
            old.tx.close();
        }
    }

    /// Closes the connection attached to a session, if any.
    pub fn kick(&self, session_id: i64) {
        let mut st = self.lock();
        if let Some(c) = st.connections.remove(&session_id) {
            st.awaited.remove(&(session_id, c.id));
            c.tx.close();
        }
    }

    /// Records that connection `connection_id` of `session_id` submitted the write `xid` and
    /// waits for its reply (call before submitting it).
    pub fn await_reply(&self, session_id: i64, connection_id: u64, xid: i32) {
        self.lock()
            .awaited
            .entry((session_id, connection_id))
            .or_default()
            .insert(xid);
    }

    /// Forgets an awaited reply (the write was never submitted).
    pub fn forget_reply(&self, session_id: i64, connection_id: u64, xid: i32) {
        if let Some(set) = self.lock().awaited.get_mut(&(session_id, connection_id)) {
            set.remove(&xid);
        }
    }

    /// Closes every attached connection (an ensemble member that lost its leader); their
    /// watches go with them, as with [`Hub::detach`].
    pub fn kick_all(&self) {
        let mut st = self.lock();
        let State {
            connections,
            auth,
            watches,
            ..
        } = &mut *st;
        for (session, c) in connections.drain() {
            watches.remove_session(session);
            auth.remove(&session);
            c.tx.close();
        }
        st.awaited.clear();
    }

    /// The tree was replaced by a snapshot (a replica that fell behind the leader's log): the
    /// watches were registered against a tree that no longer is, and the replies and session
    /// creations awaited here were decided in entries this server never applied. Every
    /// connection is closed (its client reconnects and re-registers its watches with
    /// setWatches, which fires what it missed), and every pending session creation fails.
    pub fn reset(&self) {
        self.kick_all();
        self.lock().pending_sessions.clear();
    }

    /// Records a connected session's authenticated ids (after the handshake and each addauth).
    pub fn set_auth(&self, session_id: i64, auth: Arc<[AuthId]>) {
        self.lock().auth.insert(session_id, auth);
    }

    /// Detaches a connection from its session if it is still the attached one; its watches go
    /// with it.
    pub fn detach(&self, session_id: i64, connection_id: u64) {
        let mut st = self.lock();
        if st
            .connections
            .get(&session_id)
            .is_some_and(|c| c.id == connection_id)
        {
            st.connections.remove(&session_id);
            st.watches.remove_session(session_id);
            st.auth.remove(&session_id);
        }
        st.awaited.remove(&(session_id, connection_id));
    }

    /// Registers a watch (call inside [`crate::Backend::read`]).
    pub fn add_watch(&self, kind: WatchKind, path: &str, session_id: i64) {
        self.lock().watches.add(kind, path, session_id);
    }

    /// checkWatches (`remove` false) or removeWatches (`remove` true): whether the session had
    /// such a watch on `path`.
    pub fn find_watch(
        &self,
        watcher_type: zk_protocol::watch::WatcherType,
        path: &str,
        session_id: i64,
        remove: bool,
    ) -> bool {
        let mut st = self.lock();
        if remove {
            st.watches.remove_type(watcher_type, path, session_id)
        } else {
            st.watches.contains(watcher_type, path, session_id)
        }
    }

    /// Sends a notification to a session's connection, if it is here.
    pub fn notify(&self, session_id: i64, frame: Bytes) {
        if let Some(c) = self.lock().connections.get(&session_id) {
            c.tx.frame(frame);
            self.stats.packets_sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The watches as `wchs`, `wchc` and `wchp` report them: (session, path) pairs.
    pub fn watch_pairs(&self) -> Vec<(i64, String)> {
        self.lock().watches.pairs()
    }

    /// The number of connected sessions and of watches.
    pub fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.connections.len(), st.watches.count())
    }

    /// Routes the results of one applied command: watch events first, then the reply to the
    /// session that sent it (if connected here). Called by the backend in log order while it
    /// excludes readers.
    pub fn on_applied(&self, zxid: i64, cmd: &Command, applied: &Applied) {
        let mut st = self.lock();
        for t in &applied.triggers {
            // Built for the first watcher that gets it: most writes have none.
            let mut frame = None;
            for session in st.watches.fire(&t.path, t.event) {
                // ZooKeeper 3.9 delivers an event only to a watcher with READ on the node.
                let auth = st.auth.get(&session).map_or(&[][..], |a| &a[..]);
                if check_acl(&t.acl, perms::READ, auth).is_err() {
                    continue;
                }
                if let Some(c) = st.connections.get(&session) {
                    let frame =
                        frame.get_or_insert_with(|| notification(zxid, t.event as i32, &t.path));
                    c.tx.frame(frame.clone());
                    self.stats.packets_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        match (&cmd.op, &applied.outcome) {
            (Op::CreateSession { server_id, .. }, Outcome::SessionCreated { session_id }) => {
                // Another server's session with the same token is not this connection's.
                if st
                    .pending_sessions
                    .get(&cmd.xid)
                    .is_some_and(|(mine, _)| mine == server_id)
                    && let Some((_, tx)) = st.pending_sessions.remove(&cmd.xid)
                {
                    let _ = tx.send(*session_id);
                }
            }
            (Op::CloseSession, outcome) => {
                st.watches.remove_session(cmd.session_id);
                if let Some(c) = st.connections.remove(&cmd.session_id) {
                    let awaited = st.awaited.remove(&(cmd.session_id, c.id));
                    if cmd.xid != 0 && awaited.is_some_and(|set| set.contains(&cmd.xid)) {
                        let frame = write_reply(OpCode::CloseSession, cmd.xid, zxid, outcome);
                        c.tx.frame(frame);
                    }
                    c.tx.close();
                }
            }
            (Op::Request(req), outcome) => {
                self.reply_to_client(&mut st, req.opcode(), zxid, cmd, outcome)
            }
            (Op::Configure(_), outcome) => {
                self.reply_to_client(&mut st, OpCode::Reconfig, zxid, cmd, outcome)
            }
            // Internal commands nobody waits for (their watch events went out above).
            (Op::CreateSession { .. } | Op::Reap { .. }, _) => {}
        }
    }
}

impl Hub {
    /// Sends the reply to a client's write if the connection that sent it is here.
    fn reply_to_client(
        &self,
        st: &mut State,
        opcode: OpCode,
        zxid: i64,
        cmd: &Command,
        outcome: &Outcome,
    ) {
        let State {
            connections,
            awaited,
            ..
        } = st;
        if let Some(c) = connections.get(&cmd.session_id)
            && awaited
                .get_mut(&(cmd.session_id, c.id))
                .is_some_and(|set| set.remove(&cmd.xid))
        {
            let frame = write_reply(opcode, cmd.xid, zxid, outcome);
            c.tx.frame(frame);
            self.stats.packets_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_created(server_id: u8, token: i32, session_id: i64) -> (Command, Applied) {
        let op = Op::CreateSession {
            timeout_ms: 10_000,
            server_id,
        };
        let applied = Applied {
            outcome: Outcome::SessionCreated { session_id },
            triggers: Vec::new(),
        };
        (Command::internal(0, token, op), applied)
    }

    #[test]
    fn a_session_created_by_another_server_is_not_handed_to_a_pending_connection() {
        let hub = Hub::default();
        let (token, mut created) = hub.expect_session(1);
        // Server 2 applies its own CreateSession with the same token first (every server
        // counts tokens from 1): that id belongs to server 2's client.
        let (cmd, applied) = session_created(2, token, 0x0200_0000_0000_0011);
        hub.on_applied(0x11, &cmd, &applied);
        assert!(
            created.try_recv().is_err(),
            "another server's session id was handed out"
        );
        let (cmd, applied) = session_created(1, token, 0x0100_0000_0000_0012);
        hub.on_applied(0x12, &cmd, &applied);
        assert_eq!(created.try_recv(), Ok(0x0100_0000_0000_0012));
    }

    #[test]
    fn a_connection_over_its_byte_budget_is_closed() {
        let (tx, mut rx) = Outbox::channel(Arc::default());
        tx.frame(Bytes::from(vec![0u8; OUTBOX_BYTES_MAX - 10]));
        tx.frame(Bytes::from_static(&[1; 20]));
        assert!(
            matches!(rx.try_recv(), Some(Outbound::Frame(f)) if f.len() == OUTBOX_BYTES_MAX - 10)
        );
        assert!(matches!(rx.try_recv(), Some(Outbound::Close)));
        // Once the writer took the big frame, there is room again.
        tx.frame(Bytes::from_static(&[1; 20]));
        assert!(matches!(rx.try_recv(), Some(Outbound::Frame(f)) if f.len() == 20));
    }
}
