//! One client connection: the handshake, then requests answered strictly in order.
//!
//! A reader task decodes frames and handles one request at a time; replies go through an
//! unbounded queue to a writer task, as do watch events and the replies to writes, which the
//! apply listener routes. Because a write's reply is queued by apply before `propose` returns,
//! and a read's reply is queued while apply is excluded, every session sees its replies in
//! request order and a watch event before any reply that shows the change.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tracing::debug;
use zk_datatree::{Command, Op};
use zk_datatree::{check_acl, mask_digests};
use zk_protocol::frame::{FrameStart, frame_start};
use zk_protocol::handshake::{decode_connect_request, encode_connect_response};
use zk_protocol::jute::Record;
use zk_protocol::jute::data::ClientInfo;
use zk_protocol::jute::proto::{
    ConnectResponse, ErrorResponse, ExistsResponse, GetACLResponse, GetAllChildrenNumberResponse,
    GetChildren2Response, GetChildrenResponse, GetDataResponse, GetEphemeralsResponse,
    RequestHeader, SetSASLResponse, SyncResponse, WhoAmIResponse,
};
use zk_protocol::multi::{MultiOp, MultiResult};
use zk_protocol::watch::{AddWatchMode, EventType, WatcherType};
use zk_protocol::{ErrorCode, OpCode, Request, RequestError, perms, xid};

use crate::backend::{Backend, BackendError, Pending, TreeRead, walk};
use crate::conns::{ConnInfo, short_op};
use crate::fourlw;
use crate::hub::{
    Outbound, Outbox, OutboxReceiver, header_frame, notification, record_frame, reply,
};
use crate::password::session_password;
use crate::server::{Server, wall_clock_ms};
use crate::watches::WatchKind;
use crate::{auth, sasl};

/// The longest a connecting client whose `lastZxidSeen` is ahead of this server waits for
/// apply to catch up before it is refused.
const LAST_ZXID_WAIT_MS: u64 = 1000;

/// Reads frames off the socket.
struct FrameReader {
    rd: OwnedReadHalf,
    buf: BytesMut,
}

/// Why reading stopped.
enum ReadEnd {
    /// The peer closed, or the socket failed.
    Closed,
    /// A length below 0 or above `jute.maxbuffer`: close without a reply.
    BadLength,
}

impl FrameReader {
    async fn fill(&mut self, n: usize) -> Result<(), ReadEnd> {
        while self.buf.len() < n {
            self.buf.reserve(n - self.buf.len());
            match self.rd.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Err(ReadEnd::Closed),
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// Returns the next frame start, then (for frames) the body.
    async fn next(&mut self, before_handshake: bool, max: usize) -> Result<Start, ReadEnd> {
        self.fill(4).await?;
        let prefix: [u8; 4] = self.buf[..4].try_into().expect("4 bytes");
        match frame_start(prefix, before_handshake, max) {
            Err(_) => Err(ReadEnd::BadLength),
            Ok(FrameStart::FourLetterWord(w)) => {
                let _ = self.buf.split_to(4);
                Ok(Start::Word(w))
            }
            Ok(FrameStart::Frame(len)) => {
                self.fill(4 + len).await?;
                let _ = self.buf.split_to(4);
                Ok(Start::Frame(self.buf.split_to(len).freeze()))
            }
        }
    }
}

enum Start {
    Frame(Bytes),
    Word(zk_protocol::frame::FourLetterWord),
}

/// Serves one accepted connection to the end.
pub async fn serve<B: Backend>(server: Arc<Server<B>>, stream: TcpStream, peer: SocketAddr) {
    let connection_id = server.hub.next_connection_id();
    let sent = Arc::new(AtomicU64::new(0));
    let info = Arc::new(ConnInfo::new(peer, Arc::clone(&sent)));
    server.hub.conns.add(connection_id, Arc::clone(&info));
    serve_registered(&server, stream, peer, connection_id, &info, sent).await;
    server.hub.conns.remove(connection_id);
}

async fn serve_registered<B: Backend>(
    server: &Arc<Server<B>>,
    stream: TcpStream,
    peer: SocketAddr,
    connection_id: u64,
    info: &Arc<ConnInfo>,
    sent: Arc<AtomicU64>,
) {
    let (rd, mut wr) = stream.into_split();
    let mut reader = FrameReader {
        rd,
        buf: BytesMut::with_capacity(4096),
    };
    let max = server.config.frame_bytes_max;

    let body = match reader.next(true, max).await {
        Ok(Start::Word(word)) => {
            info.received.fetch_add(1, Ordering::Relaxed);
            server
                .hub
                .stats
                .packets_received
                .fetch_add(1, Ordering::Relaxed);
            let text = fourlw::answer(server, word);
            let _ = wr.write_all(text.as_bytes()).await;
            let _ = wr.shutdown().await;
            return;
        }
        Ok(Start::Frame(body)) => body,
        Err(_) => return,
    };
    info.received.fetch_add(1, Ordering::Relaxed);
    server
        .hub
        .stats
        .packets_received
        .fetch_add(1, Ordering::Relaxed);
    let Ok(handshake) = decode_connect_request(body, max) else {
        debug!(%peer, "undecodable connect request, closing");
        return;
    };
    let request = &handshake.request;
    if !server.serving() {
        // An ensemble member without a leader does not serve ("ZooKeeperServer not running"):
        // the client tries another server.
        debug!(%peer, "no leader, not serving; closing");
        return;
    }
    let timeout = server.config.negotiate_timeout(request.time_out);
    if request.last_zxid_seen > server.backend.last_applied() {
        // A replica is usually milliseconds behind: wait a little for apply to catch up
        // (a third of the session timeout, at most a second), then refuse as ZooKeeper does
        // ("Refusing session request for client ... as it has seen zxid ... our last zxid
        // is ..."): close without a reply, and the client tries another server.
        let wait = Duration::from_millis((timeout.max(0) as u64 / 3).min(LAST_ZXID_WAIT_MS));
        if !server
            .backend
            .wait_applied(request.last_zxid_seen, wait)
            .await
        {
            debug!(
                %peer,
                seen = request.last_zxid_seen,
                ours = server.backend.last_applied(),
                "client is ahead of this server, closing"
            );
            return;
        }
    }

    let (tx, rx) = Outbox::channel(sent);
    let writer = tokio::spawn(write_loop(wr, rx, Arc::clone(server)));

    let session_id = if request.session_id == 0 {
        let (token, created) = server.hub.expect_session(server.config.server_id);
        let op = Op::CreateSession {
            timeout_ms: timeout,
            server_id: server.config.server_id,
        };
        let cmd = Command::internal(0, token, op);
        // Bounded by the session timeout: by then the client has given up on this server.
        let wait = Duration::from_millis(timeout.max(0) as u64);
        let created = match tokio::time::timeout(wait, server.backend.propose(cmd)).await {
            // Applied here, so the hub has already handed over the id (unless a snapshot
            // install dropped the pending creation).
            Ok(Ok(_)) => created.await.ok(),
            _ => None,
        };
        match created {
            Some(id) => {
                server.tracker.track(id, timeout);
                Some(id)
            }
            None => {
                // No session could be created (no leader, or it was lost): close without a
                // reply, as a ZooKeeper server that stops serving does; the client tries
                // another server. Never answer with an expired session it did not have.
                server.hub.forget_pending(token);
                debug!(%peer, "creating a session failed; closing");
                return;
            }
        }
    } else {
        let id = request.session_id;
        let password_ok = request.passwd.as_deref() == Some(&session_password(id)[..]);
        if !password_ok {
            // Apache ZooKeeper 3.9.5 also closes the session's current connection when a
            // reconnect brings the wrong password (measured); the session itself survives.
            server.hub.kick(id);
        }
        let alive = password_ok
            && server.backend.read(|t| t.session(id)).is_some()
            && (server.tracker.touch(id) || {
                // Known to the replicated table but not tracked here (e.g. it was created on
                // another server): track it from now on.
                server.tracker.track(id, timeout);
                true
            });
        if alive && let Err(e) = server.backend.claim_session(id).await {
            // The leader could not be told that the session is here now (no leader): refuse
            // the connection, and the client tries another server.
            debug!(%peer, error = %e, "cannot move the session here; closing");
            return;
        }
        alive.then_some(id)
    };

    let response = match session_id {
        Some(id) => ConnectResponse {
            protocol_version: 0,
            time_out: timeout,
            session_id: id,
            passwd: Some(Bytes::copy_from_slice(&session_password(id))),
            read_only: false,
        },
        // An expired or unknown session: timeout 0, id 0, a zero password, then close.
        None => ConnectResponse {
            protocol_version: 0,
            time_out: 0,
            session_id: 0,
            passwd: Some(Bytes::from_static(&[0; 16])),
            read_only: false,
        },
    };
    let mut out = BytesMut::new();
    zk_protocol::frame::write_frame(&mut out, |b| {
        encode_connect_response(b, &response, handshake.read_only_sent)
    });
    tx.frame(out.freeze());
    let Some(session_id) = session_id else {
        tx.close();
        let _ = writer.await;
        return;
    };
    server.hub.attach(session_id, connection_id, tx.clone());
    info.session_id.store(session_id, Ordering::Relaxed);
    info.timeout_ms.store(timeout, Ordering::Relaxed);
    info.established_ms
        .store(wall_clock_ms(), Ordering::Relaxed);

    let mut conn = Conn {
        server: Arc::clone(server),
        info: Arc::clone(info),
        session_id,
        connection_id,
        tx,
        peer,
        auth: Arc::new([auth::AuthId::new("ip", peer.ip().to_string())]),
        sasl: None,
        pending: VecDeque::new(),
        permit: None,
    };
    server.hub.set_auth(session_id, conn.auth.clone());
    let mut writer = writer;
    loop {
        let frame = tokio::select! {
            f = reader.next(false, max) => f,
            _ = &mut writer => break,
            // Notice a failed write in flight while the client is quiet. The frame reader is
            // cancel-safe: bytes already read stay in its buffer.
            done = poll_oldest(&mut conn.pending), if !conn.pending.is_empty() => {
                match done {
                    Some((_, Ok(_))) => continue,
                    Some((xid, Err(e))) => {
                        conn.connection_loss(xid, &e);
                        break;
                    }
                    None => continue,
                }
            }
        };
        let Ok(Start::Frame(body)) = frame else {
            break;
        };
        server
            .hub
            .stats
            .packets_received
            .fetch_add(1, Ordering::Relaxed);
        server.tracker.touch(session_id);
        if !conn.handle(body).await {
            break;
        }
    }
    server.hub.detach(session_id, connection_id);
    // Let the writer flush what is queued (a last reply, e.g. to closeSession or an
    // UNIMPLEMENTED), then close; a peer that stopped reading gets a bounded wait.
    conn.tx.close();
    drop(conn);
    // A JoinHandle that already returned its output must not be polled again (tokio panics):
    // the writer ends first when the hub closes the outbox (session expired or moved).
    if !writer.is_finished()
        && tokio::time::timeout(Duration::from_secs(5), &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
}

/// Completes the oldest write in flight.
async fn poll_oldest(
    pending: &mut VecDeque<(i32, Pending)>,
) -> Option<(i32, Result<i64, BackendError>)> {
    let (xid, fut) = pending.front_mut()?;
    let xid = *xid;
    let result = fut.await;
    pending.pop_front();
    Some((xid, result))
}

/// Drains the outbound queue into the socket, batching what is queued.
async fn write_loop<B>(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: OutboxReceiver,
    _server: Arc<Server<B>>,
) {
    let mut batch = BytesMut::new();
    while let Some(first) = rx.recv().await {
        let mut close = false;
        let mut next = Some(first);
        while let Some(item) = next {
            match item {
                Outbound::Frame(f) => batch.extend_from_slice(&f),
                Outbound::Close => {
                    close = true;
                    break;
                }
            }
            next = rx.try_recv();
        }
        if !batch.is_empty() && wr.write_all(&batch).await.is_err() {
            return;
        }
        batch.clear();
        if close {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

/// The request side of a connection with a session.
struct Conn<B> {
    server: Arc<Server<B>>,
    session_id: i64,
    /// This connection's id (the hub routes replies to the connection that sent the request).
    connection_id: u64,
    tx: Outbox,
    peer: SocketAddr,
    /// The connection's authenticated ids; the first is always `ip:<address>`. Shared with
    /// every write's command, so a write does not copy them.
    auth: Arc<[auth::AuthId]>,
    /// Where this connection's SASL exchange stands.
    sasl: Option<sasl::Sasl>,
    /// Writes submitted and not yet known to be applied, oldest first.
    pending: VecDeque<(i32, Pending)>,
    /// This connection's counters (`cons`).
    info: Arc<ConnInfo>,
    /// The throttle permit of the request being dispatched; a write takes it along until it
    /// is applied.
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// The most writes one connection may have in flight; past it, reading waits for the oldest.
pub const PIPELINE_MAX: usize = 256;

/// Whether a request is a write that goes through the log and may be pipelined.
fn is_write(r: &Request) -> bool {
    matches!(
        r,
        Request::Create(..)
            | Request::CreateTtl(_)
            | Request::Delete(_)
            | Request::DeleteContainer(_)
            | Request::SetData(_)
            | Request::SetAcl(_)
            | Request::Multi(_)
            | Request::Reconfig(_)
    )
}

impl<B: Backend> Conn<B> {
    fn send(&self, frame: Bytes) {
        self.tx.frame(frame);
        self.server
            .hub
            .stats
            .packets_sent
            .fetch_add(1, Ordering::Relaxed);
    }

    fn header(&self, xid: i32, zxid: i64, err: ErrorCode) -> Bytes {
        header_frame(xid, zxid, err.code())
    }

    fn body(&self, xid: i32, zxid: i64, rec: &impl Record) -> Bytes {
        record_frame(xid, zxid, 0, rec)
    }

    /// Handles one request frame. Returns false when the connection must close.
    async fn handle(&mut self, body: Bytes) -> bool {
        let started = Instant::now();
        let mut r = zk_protocol::jute::Reader::new(body);
        let Ok(header) = RequestHeader::decode(&mut r) else {
            // Java fails reading the header and closes the connection.
            return false;
        };
        let body = r.into_remaining();
        let (xid, opcode) = (header.xid, header.r#type);
        let hub = Arc::clone(&self.server.hub);
        let stats = &hub.stats;
        stats.outstanding.fetch_add(1, Ordering::Relaxed);
        self.info.received.fetch_add(1, Ordering::Relaxed);
        let keep = self.dispatch(xid, opcode, body).await;
        self.permit = None;
        stats.outstanding.fetch_sub(1, Ordering::Relaxed);
        let elapsed = started.elapsed();
        stats.record_latency(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        self.info.record(
            short_op(opcode),
            xid,
            self.server.backend.last_applied(),
            i64::try_from(self.server.started.elapsed().as_millis()).unwrap_or(i64::MAX),
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        );
        keep
    }

    async fn dispatch(&mut self, xid: i32, opcode: i32, body: Bytes) -> bool {
        if !self.may_send(opcode) {
            // AuthenticationHelper.enforceAuthentication: answered before the body is read
            // (zxid 0), then the connection is closed; the session is left to expire.
            self.send(self.header(xid, 0, ErrorCode::SessionClosedRequireSaslAuth));
            return false;
        }
        let Some(throttled) = self.throttle(opcode).await else {
            return false;
        };
        let decoded = (opcode != OpCode::Ping as i32)
            .then(|| Request::decode(opcode, body, self.server.config.frame_bytes_max));
        // Writes are pipelined; anything else is answered after the session's writes in
        // flight, so replies keep request order and reads see the session's own writes.
        let pipelined = !throttled && matches!(&decoded, Some(Ok(r)) if is_write(r));
        if !pipelined && !self.drain().await {
            return false;
        }
        let last = || self.server.backend.last_applied();
        let Some(decoded) = decoded else {
            self.send(self.header(xid::PING, last(), ErrorCode::Ok));
            return true;
        };
        if throttled && !matches!(decoded, Err(RequestError::UnknownOpcode(_))) {
            // RequestThrottler marked it: answered THROTTLEDOP without running it (no zxid
            // taken), in order after the session's earlier writes.
            self.send(self.header(xid, last(), ErrorCode::ThrottledOp));
            return true;
        }
        let request = match decoded {
            Ok(r) => r,
            Err(RequestError::UnknownOpcode(_)) => {
                // UnimplementedRequestProcessor: reply (zxid -1), then close; the session
                // survives.
                self.send(self.header(xid, -1, ErrorCode::Unimplemented));
                return false;
            }
            Err(_) if opcode == OpCode::MultiRead as i32 => {
                // A multiRead that does not decode is answered with an empty multi response.
                let mut out = BytesMut::new();
                reply(
                    &mut out,
                    xid,
                    last(),
                    ErrorCode::MarshallingError.code(),
                    Some(&|b| zk_protocol::multi::encode_multi_response(b, &[])),
                );
                self.send(out.freeze());
                return true;
            }
            Err(_) => {
                self.send(self.header(xid, last(), ErrorCode::MarshallingError));
                return true;
            }
        };
        match request {
            write if is_write(&write) => {
                // An ensemble's reconfig changes the membership before it is logged: nothing
                // the session sends after it may overtake it.
                let reconfig = matches!(write, Request::Reconfig(_));
                self.write(xid, write).await && (!reconfig || self.drain().await)
            }
            Request::CloseSession => {
                let cmd = Command::internal(self.session_id, xid, Op::CloseSession);
                self.server.tracker.forget(self.session_id);
                self.server
                    .hub
                    .await_reply(self.session_id, self.connection_id, xid);
                if let Ok(pending) = self.server.backend.submit_client(cmd).await {
                    let _ = pending.await;
                }
                false
            }
            Request::Check(_) => {
                // ZooKeeper 3.9 answers a standalone check as an unknown operation (zxid -1).
                self.send(self.header(xid, -1, ErrorCode::Unimplemented));
                false
            }
            Request::Sync(req) => match self.server.backend.read_barrier().await {
                Ok(zxid) => {
                    self.send(self.body(xid, zxid, &SyncResponse { path: req.path }));
                    true
                }
                Err(_) => {
                    self.send(self.header(xid, last(), ErrorCode::ConnectionLoss));
                    false
                }
            },
            Request::Auth(packet) => {
                let scheme = packet.scheme.unwrap_or_default();
                let data = packet.auth.unwrap_or_default();
                let super_digest = self.server.config.super_digest.as_deref();
                match auth::authenticate(&scheme, &data, &self.peer.ip().to_string(), super_digest)
                {
                    Some(ids) => {
                        self.add_auth(ids);
                        self.send(self.header(xid, 0, ErrorCode::Ok));
                        true
                    }
                    None => {
                        // ZooKeeper answers AUTHFAILED and closes the connection.
                        self.send(self.header(xid, 0, ErrorCode::AuthFailed));
                        false
                    }
                }
            }
            Request::SetWatches(sw) => {
                let z = sw.relative_zxid;
                self.set_watches(xid, z, sw.data_watches, sw.exist_watches, sw.child_watches);
                true
            }
            Request::SetWatches2(sw) => {
                // Persistent watches are simply registered again (DataTree.setWatches).
                for path in sw.persistent_watches.unwrap_or_default() {
                    self.watch(WatchKind::Persistent, &path);
                }
                for path in sw.persistent_recursive_watches.unwrap_or_default() {
                    self.watch(WatchKind::PersistentRecursive, &path);
                }
                let z = sw.relative_zxid;
                self.set_watches(xid, z, sw.data_watches, sw.exist_watches, sw.child_watches);
                true
            }
            Request::AddWatch(req) => {
                let kind = match AddWatchMode::from_i32(req.mode) {
                    Some(AddWatchMode::Persistent) => WatchKind::Persistent,
                    Some(AddWatchMode::PersistentRecursive) => WatchKind::PersistentRecursive,
                    None => {
                        self.send(self.header(xid, last(), ErrorCode::MarshallingError));
                        return true;
                    }
                };
                let path = req.path.unwrap_or_default();
                let backend = Arc::clone(&self.server.backend);
                // Registered under the read gate, like a read, so no event slips between.
                backend.read(|_| {
                    self.watch(kind, &path);
                    self.send(self.body(xid, backend.last_applied(), &ErrorResponse { err: 0 }));
                });
                true
            }
            Request::CheckWatches(req) => {
                self.find_watch(xid, req.path, req.r#type, false);
                true
            }
            Request::RemoveWatches(req) => {
                self.find_watch(xid, req.path, req.r#type, true);
                true
            }
            Request::WhoAmI => {
                let info = WhoAmIResponse {
                    client_info: Some(
                        self.auth
                            .iter()
                            .map(|a| ClientInfo {
                                auth_scheme: Some(a.scheme.clone()),
                                user: Some(auth::user_name(&a.scheme, &a.id)),
                            })
                            .collect(),
                    ),
                };
                self.send(self.body(xid, last(), &info));
                true
            }
            Request::Sasl(req) => match self.sasl_step(&req.token.unwrap_or_default()) {
                Ok(token) => {
                    // With no SASL users ZooKeeper has no SASL server for the connection and
                    // answers OK with no token. processSasl answers with zxid 0.
                    let resp = SetSASLResponse {
                        token: token.map(|t| Bytes::from(t.into_bytes())),
                    };
                    self.send(self.body(xid, 0, &resp));
                    true
                }
                Err(()) => {
                    // ZooKeeper answers the failed step (zxid 0, an empty token) and closes the
                    // connection; the session lives on until it expires.
                    let err = if self
                        .server
                        .config
                        .enforce_auth_schemes
                        .iter()
                        .any(|s| s == "sasl")
                    {
                        ErrorCode::SessionClosedRequireSaslAuth
                    } else {
                        ErrorCode::AuthFailed
                    };
                    let resp = SetSASLResponse { token: None };
                    self.send(record_frame(xid, 0, err.code(), &resp));
                    false
                }
            },
            Request::Ping => unreachable!("handled above"),
            read => {
                self.read(xid, &read);
                true
            }
        }
    }

    /// Waits for a throttle permit (`request_throttle_max_requests`) and keeps it in
    /// `self.permit`. Returns whether the request waited longer than `throttled_op_wait_time`
    /// and is throttlable (not a ping or closeSession), so that it must be answered
    /// THROTTLEDOP. auth and sasl are answered before the throttle in ZooKeeper. While it
    /// waits it completes this connection's own writes (they hold permits until applied);
    /// `None` when one of them failed and the connection must close.
    async fn throttle(&mut self, opcode: i32) -> Option<bool> {
        let Some(sem) = self.server.throttle.clone() else {
            return Some(false);
        };
        if opcode == OpCode::Auth as i32 || opcode == OpCode::Sasl as i32 {
            return Some(false);
        }
        let started = Instant::now();
        let acquire = sem.acquire_owned();
        tokio::pin!(acquire);
        loop {
            tokio::select! {
                permit = &mut acquire => {
                    self.permit = permit.ok();
                    break;
                }
                done = poll_oldest(&mut self.pending), if !self.pending.is_empty() => {
                    if let Some((xid, Err(e))) = done {
                        self.connection_loss(xid, &e);
                        return None;
                    }
                }
            }
        }
        let wait_ms = self.server.config.throttled_op_wait_ms;
        Some(
            wait_ms > 0
                && started.elapsed().as_millis() > u128::from(wait_ms)
                && opcode != OpCode::Ping as i32
                && opcode != OpCode::CloseSession as i32,
        )
    }

    /// Whether a request with this opcode may be served: auth and sasl always; anything else
    /// needs an id of an enforced scheme when `enforce.auth.enabled` is on.
    fn may_send(&self, opcode: i32) -> bool {
        let schemes = &self.server.config.enforce_auth_schemes;
        schemes.is_empty()
            || opcode == OpCode::Auth as i32
            || opcode == OpCode::Sasl as i32
            || self.auth.iter().any(|a| schemes.contains(&a.scheme))
    }

    /// One step of SASL DIGEST-MD5: the token to answer (none when SASL is not configured), or
    /// `Err` when authentication failed.
    fn sasl_step(&mut self, token: &[u8]) -> Result<Option<String>, ()> {
        let users = &self.server.config.sasl_users;
        if users.is_empty() {
            return Ok(None);
        }
        match &self.sasl {
            None => {
                let nonce = sasl::new_nonce();
                let challenge = sasl::challenge(&nonce);
                self.sasl = Some(sasl::Sasl::Challenged { nonce });
                Ok(Some(challenge))
            }
            Some(sasl::Sasl::Challenged { nonce }) => {
                let (user, rspauth) = sasl::verify(token, nonce, users).ok_or(())?;
                let mut ids = Vec::new();
                if self.server.config.sasl_super_user.as_deref() == Some(user.as_str()) {
                    ids.push(auth::AuthId::new("super", ""));
                }
                ids.push(auth::AuthId::new("sasl", user));
                self.add_auth(ids);
                self.sasl = Some(sasl::Sasl::Done);
                Ok(Some(rspauth))
            }
            Some(sasl::Sasl::Done) => Err(()),
        }
    }

    /// Adds authenticated ids (each once) and tells the hub, which checks watch deliveries
    /// against them.
    fn add_auth(&mut self, ids: Vec<auth::AuthId>) {
        let mut all = self.auth.to_vec();
        for id in ids {
            if !all.contains(&id) {
                all.push(id);
            }
        }
        self.auth = all.into();
        self.server
            .hub
            .set_auth(self.session_id, Arc::clone(&self.auth));
    }

    /// Proposes a write; apply routes its reply. A failure is CONNECTIONLOSS and a close.
    async fn write(&mut self, xid: i32, request: Request) -> bool {
        let cmd = Command {
            time_ms: 0,
            session_id: self.session_id,
            xid,
            auth: self.auth.clone(),
            features: self.server.config.features(),
            op: Op::Request(request),
        };
        if self.pending.len() >= PIPELINE_MAX && !self.complete_oldest().await {
            return false;
        }
        let permit = self.permit.take();
        let hub = &self.server.hub;
        hub.await_reply(self.session_id, self.connection_id, xid);
        match self.server.backend.submit_client(cmd).await {
            Ok(pending) => {
                // The write stays in process (holding its throttle permit) until applied.
                let pending: Pending = match permit {
                    None => pending,
                    Some(permit) => Box::pin(async move {
                        let done = pending.await;
                        drop(permit);
                        done
                    }),
                };
                self.pending.push_back((xid, pending));
                true
            }
            Err(e) => {
                hub.forget_reply(self.session_id, self.connection_id, xid);
                self.connection_loss(xid, &e)
            }
        }
    }

    /// Answers CONNECTIONLOSS for a write that could not be completed; the connection then
    /// closes and the client reconnects with its session (ARCHITECTURE.md).
    ///
    /// SESSIONMOVED (the client reconnected to another server, and this connection is stale)
    /// closes the connection without a reply, as ZooKeeper's FinalRequestProcessor does.
    fn connection_loss(&self, xid: i32, e: &BackendError) -> bool {
        if e.is_session_moved() {
            debug!(
                session = format_args!("0x{:x}", self.session_id),
                "session moved; closing"
            );
            return false;
        }
        let last = self.server.backend.last_applied();
        self.send(self.header(xid, last, ErrorCode::ConnectionLoss));
        false
    }

    /// Waits for the oldest write in flight. Its reply was routed by apply; a failure is
    /// CONNECTIONLOSS and a close.
    async fn complete_oldest(&mut self) -> bool {
        match self.pending.pop_front() {
            None => true,
            Some((xid, pending)) => match pending.await {
                Ok(_) => true,
                Err(e) => self.connection_loss(xid, &e),
            },
        }
    }

    /// Waits for every write in flight.
    async fn drain(&mut self) -> bool {
        while !self.pending.is_empty() {
            if !self.complete_oldest().await {
                return false;
            }
        }
        true
    }

    /// Answers a read atomically with respect to apply, registering its watch.
    fn read(&self, xid: i32, request: &Request) {
        let backend = Arc::clone(&self.server.backend);
        self.server.read_tree(|tree| {
            let zxid = backend.last_applied();
            let frame = match self.read_one(tree, request) {
                Ok(frame) => frame(self, xid, zxid),
                Err(code) => self.header(xid, zxid, code),
            };
            self.send(frame);
        });
    }

    /// checkWatches / removeWatches: NOWATCHER when the session has no such watch.
    fn find_watch(&self, xid: i32, path: Option<String>, watcher_type: i32, remove: bool) {
        let last = self.server.backend.last_applied();
        let Some(watcher_type) = WatcherType::from_i32(watcher_type) else {
            self.send(self.header(xid, last, ErrorCode::MarshallingError));
            return;
        };
        let path = path.unwrap_or_default();
        let found = self
            .server
            .hub
            .find_watch(watcher_type, &path, self.session_id, remove);
        let code = if found {
            ErrorCode::Ok
        } else {
            ErrorCode::NoWatcher
        };
        self.send(self.header(xid, last, code));
    }

    /// The node at `path` if this connection may READ it, registering a watch of `watch`'s
    /// kind if asked (after the checks, as ZooKeeper registers it only for a readable node).
    fn readable(
        &self,
        tree: &dyn TreeRead,
        path: &str,
        watch: Option<WatchKind>,
    ) -> Result<zk_datatree::Node, ErrorCode> {
        let node = tree.node(path).ok_or(ErrorCode::NoNode)?;
        check_acl(&node.acl, perms::READ, &self.auth)?;
        if let Some(kind) = watch {
            self.watch(kind, path);
        }
        Ok(node)
    }

    fn watch(&self, kind: WatchKind, path: &str) {
        self.server.hub.add_watch(kind, path, self.session_id);
    }

    #[allow(clippy::type_complexity)]
    fn read_one(
        &self,
        tree: &dyn TreeRead,
        request: &Request,
    ) -> Result<Box<dyn FnOnce(&Self, i32, i64) -> Bytes + '_>, ErrorCode> {
        let path_of = |p: &Option<String>| p.clone().ok_or(ErrorCode::MarshallingError);
        Ok(match request {
            Request::Exists(req) => {
                let path = path_of(&req.path)?;
                if path.contains('\0') {
                    return Err(ErrorCode::BadArguments);
                }
                let node = tree.node(&path);
                if let Some(n) = &node {
                    // ZooKeeper 3.9.2+ checks READ on an existing node.
                    check_acl(&n.acl, perms::READ, &self.auth)?;
                }
                if req.watch {
                    // An exists watch is set on a missing node too.
                    self.watch(WatchKind::Data, &path);
                }
                let stat = node.ok_or(ErrorCode::NoNode)?.stat();
                Box::new(move |c, xid, zxid| c.body(xid, zxid, &ExistsResponse { stat }))
            }
            Request::GetData(req) => {
                let path = path_of(&req.path)?;
                let node = self.readable(tree, &path, req.watch.then_some(WatchKind::Data))?;
                let resp = GetDataResponse {
                    stat: node.stat(),
                    data: node.data,
                };
                Box::new(move |c, xid, zxid| c.body(xid, zxid, &resp))
            }
            Request::GetChildren(req) => {
                let path = path_of(&req.path)?;
                self.readable(tree, &path, req.watch.then_some(WatchKind::Child))?;
                let resp = GetChildrenResponse {
                    children: Some(tree.children(&path)),
                };
                Box::new(move |c, xid, zxid| c.body(xid, zxid, &resp))
            }
            Request::GetChildren2(req) => {
                let path = path_of(&req.path)?;
                let node = self.readable(tree, &path, req.watch.then_some(WatchKind::Child))?;
                let resp = GetChildren2Response {
                    children: Some(tree.children(&path)),
                    stat: node.stat(),
                };
                Box::new(move |c, xid, zxid| c.body(xid, zxid, &resp))
            }
            Request::GetAcl(req) => {
                let path = path_of(&req.path)?;
                let node = tree.node(&path).ok_or(ErrorCode::NoNode)?;
                check_acl(&node.acl, perms::READ | perms::ADMIN, &self.auth)?;
                // Without ADMIN, digest hashes are masked (CVE-2019-0201).
                let acl = if check_acl(&node.acl, perms::ADMIN, &self.auth).is_ok() {
                    node.acl.to_vec()
                } else {
                    mask_digests(&node.acl)
                };
                let resp = GetACLResponse {
                    stat: node.stat(),
                    acl: Some(acl),
                };
                Box::new(move |c, xid, zxid| c.body(xid, zxid, &resp))
            }
            Request::GetAllChildrenNumber(req) => {
                let path = path_of(&req.path)?;
                self.readable(tree, &path, None)?;
                let total = count_descendants(tree, &path);
                let resp = GetAllChildrenNumberResponse {
                    total_number: i32::try_from(total).unwrap_or(i32::MAX),
                };
                Box::new(move |c, xid, zxid| c.body(xid, zxid, &resp))
            }
            Request::GetEphemerals(req) => {
                let prefix = req.prefix_path.clone().unwrap_or_default();
                let all = tree.ephemerals(self.session_id);
                let ephemerals = if prefix.is_empty() || prefix == "/" {
                    all
                } else {
                    all.into_iter().filter(|p| p.starts_with(&prefix)).collect()
                };
                let resp = GetEphemeralsResponse {
                    ephemerals: Some(ephemerals),
                };
                Box::new(move |c, xid, zxid| c.body(xid, zxid, &resp))
            }
            Request::MultiRead(ops) => {
                // Not atomic and never all-or-nothing: each op answers for itself.
                let results: Vec<MultiResult> = ops
                    .iter()
                    .map(|op| match op {
                        MultiOp::GetData(r) => {
                            match path_of(&r.path).and_then(|p| self.readable(tree, &p, None)) {
                                Ok(n) => MultiResult::GetData(n.data.clone(), n.stat()),
                                Err(code) => MultiResult::Error(code.code()),
                            }
                        }
                        MultiOp::GetChildren(r) => match path_of(&r.path)
                            .and_then(|p| self.readable(tree, &p, None).map(|_| p))
                        {
                            Ok(p) => MultiResult::GetChildren(tree.children(&p)),
                            Err(code) => MultiResult::Error(code.code()),
                        },
                        _ => MultiResult::Error(ErrorCode::BadArguments.code()),
                    })
                    .collect();
                Box::new(move |_c, xid, zxid| {
                    let mut out = BytesMut::new();
                    reply(
                        &mut out,
                        xid,
                        zxid,
                        0,
                        Some(&|b| zk_protocol::multi::encode_multi_response(b, &results)),
                    );
                    out.freeze()
                })
            }
            _ => return Err(ErrorCode::Unimplemented),
        })
    }

    /// Re-registers watches after a reconnect, firing at once what the client missed since
    /// `relative_zxid` (`DataTree.setWatches`).
    fn set_watches(
        &self,
        xid: i32,
        relative_zxid: i64,
        data: Option<Vec<String>>,
        exist: Option<Vec<String>>,
        child: Option<Vec<String>>,
    ) {
        let backend = Arc::clone(&self.server.backend);
        self.server.read_tree(|tree| {
            let zxid = backend.last_applied();
            let fire = |event: EventType, path: &str| {
                self.send(notification(-1, event as i32, path));
            };
            for path in data.unwrap_or_default() {
                match tree.node(&path) {
                    None => fire(EventType::NodeDeleted, &path),
                    Some(n) if n.mzxid > relative_zxid => fire(EventType::NodeDataChanged, &path),
                    Some(_) => self.watch(WatchKind::Data, &path),
                }
            }
            for path in exist.unwrap_or_default() {
                match tree.node(&path) {
                    Some(_) => fire(EventType::NodeCreated, &path),
                    None => self.watch(WatchKind::Data, &path),
                }
            }
            for path in child.unwrap_or_default() {
                match tree.node(&path) {
                    None => fire(EventType::NodeDeleted, &path),
                    Some(n) if n.pzxid > relative_zxid => {
                        fire(EventType::NodeChildrenChanged, &path)
                    }
                    Some(_) => self.watch(WatchKind::Child, &path),
                }
            }
            self.send(self.header(xid, zxid, ErrorCode::Ok));
        });
    }
}

/// All descendants of `path` (`DataTree.getAllChildrenNumber`).
fn count_descendants(tree: &dyn TreeRead, path: &str) -> usize {
    let mut total = 0;
    walk(tree, path, |_| total += 1);
    total - 1
}
