//! The peer protocol between replicas: length-delimited frames on TCP, each `len u32, id u64,
//! postcard payload`, requests and replies matched by id so that one connection carries many
//! requests at once (a follower's forwarded writes are pipelined on it, in order).
//!
//! [`PeerClient`] is one logical connection to a peer address: it connects on first use,
//! reconnects after a failure, and fails the requests in flight when the connection drops.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::types::{SnapshotMeta, TypeConfig, Vote};

/// The largest frame either side accepts: a replication batch is at most
/// `MAX_PAYLOAD_ENTRIES` entries of at most jute.maxbuffer (1 MiB) each, plus framing.
pub(crate) const FRAME_MAX: usize = 80 << 20;
/// How many log entries one append-entries request carries at most (see [`FRAME_MAX`]).
pub(crate) const MAX_PAYLOAD_ENTRIES: u64 = 64;
/// How long a connection attempt to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A request from one replica to another.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerRequest {
    /// openraft replication (and heartbeats).
    Append(AppendEntriesRequest<TypeConfig>),
    /// openraft election.
    Vote(VoteRequest<TypeConfig>),
    /// A follower forwards a write (an encoded `zk_datatree::Command`) to the leader; `origin`
    /// is the forwarding server for a client's write (checked against the session's owner),
    /// `None` for the server's own commands.
    Propose {
        /// The encoded command.
        command: Vec<u8>,
        /// The server holding the client's connection.
        origin: Option<u64>,
    },
    /// A client reconnected to `origin` with `session`: the leader records `origin` as the
    /// session's owner (ZooKeeper's revalidation), so writes still arriving through its old
    /// server are refused as SESSIONMOVED.
    Revalidate {
        /// The session.
        session: i64,
        /// The server it moved to.
        origin: u64,
    },
    /// A follower asks the leader for a read index (`sync`, linearizable reads).
    ReadIndex,
    /// A follower reports the sessions its clients kept alive since its last report (the
    /// leader alone expires sessions). Not answered.
    Touch(Vec<i64>),
    /// The leader sends a snapshot, on a connection of its own: this frame, then the bytes of
    /// each listed file in order, unframed; answered with [`PeerReply::Snapshot`] once
    /// installed.
    Snapshot(SnapshotHeader),
    /// A server that is not in the membership (yet) asks to be added as a learner: a new
    /// server of a reconfig, or one looking for a running ensemble before it initializes one.
    Join {
        /// Its id.
        id: u64,
        /// Its peer address.
        addr: String,
    },
}

/// The answer to [`PeerRequest::Join`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum JoinReply {
    /// The receiver has no cluster yet (it may initialize one with the asker).
    NotInitialized,
    /// The asker is in the membership (it was, or the leader just added it as a learner).
    Member,
    /// The receiver is in a cluster but does not lead; the leader it knows of.
    NotLeader(Option<u64>),
}

/// What precedes the files of a snapshot on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotHeader {
    /// The leader's vote (openraft checks it before installing).
    pub(crate) vote: Vote,
    /// The snapshot's metadata.
    pub(crate) meta: SnapshotMeta,
    /// The files of the checkpoint directory: name and length, in sending order.
    pub(crate) files: Vec<(String, u64)>,
}

/// The most files a snapshot may have.
pub(crate) const SNAPSHOT_FILES_MAX: usize = 100_000;
/// The most bytes a snapshot may have.
pub(crate) const SNAPSHOT_BYTES_MAX: u64 = 1 << 40;

impl SnapshotHeader {
    /// Checks the file list against the limits, and that every name is a plain file name
    /// (what a checkpoint holds: letters, digits, `.`, `-`, `_`; no path, not `.`/`..`).
    pub(crate) fn validate(&self) -> Result<u64, String> {
        if self.files.len() > SNAPSHOT_FILES_MAX {
            return Err(format!("{} files in a snapshot", self.files.len()));
        }
        let mut total: u64 = 0;
        let mut names = std::collections::HashSet::new();
        for (name, len) in &self.files {
            let plain = !name.is_empty()
                && name.len() <= 255
                && !name.starts_with('.')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !plain || !names.insert(name.as_str()) {
                return Err(format!("snapshot file name {name:?}"));
            }
            total = total
                .checked_add(*len)
                .filter(|t| *t <= SNAPSHOT_BYTES_MAX)
                .ok_or_else(|| "snapshot over the size limit".to_string())?;
        }
        Ok(total)
    }

    /// How long moving `total` bytes may take: generous for a slow disk or network (10 MiB/s),
    /// so that a dead peer is noticed without failing a large transfer.
    pub(crate) fn time_budget(total: u64) -> Duration {
        Duration::from_secs(60) + Duration::from_secs(total / (10 << 20))
    }
}

/// Why a forwarded request failed on the leader.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum RemoteFailure {
    /// The receiver does not lead (any more); `leader` is the leader it knows of.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader the receiver knows of.
        leader: Option<u64>,
    },
    /// The session's connection is on another server now (ZooKeeper's SESSIONMOVED).
    #[error("session moved to another server")]
    SessionMoved,
    /// Anything else, as text.
    #[error("{0}")]
    Failed(String),
}

/// The reply to a [`PeerRequest`], of the same kind.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerReply {
    /// To `Append`.
    Append(Result<AppendEntriesResponse<TypeConfig>, String>),
    /// To `Vote`.
    Vote(Result<VoteResponse<TypeConfig>, String>),
    /// To `Propose`: the entry's zxid once committed on the leader.
    Propose(Result<i64, RemoteFailure>),
    /// To `ReadIndex`: the leader's read index.
    ReadIndex(Result<i64, RemoteFailure>),
    /// To `Revalidate`.
    Revalidate(Result<(), RemoteFailure>),
    /// To `Snapshot`: openraft's answer once the snapshot is installed (or refused).
    Snapshot(Result<openraft::raft::SnapshotResponse<TypeConfig>, String>),
    /// To `Join`.
    Join(JoinReply),
}

pub(crate) fn encode<T: Serialize>(id: u64, msg: &T) -> io::Result<Bytes> {
    let payload = postcard::to_stdvec(msg).map_err(io::Error::other)?;
    if payload.len() + 8 > FRAME_MAX {
        return Err(io::Error::other(format!(
            "peer message of {} bytes is over the frame limit",
            payload.len()
        )));
    }
    let mut out = BytesMut::with_capacity(12 + payload.len());
    out.put_u32(u32::try_from(payload.len() + 8).expect("under FRAME_MAX"));
    out.put_u64(id);
    out.put_slice(&payload);
    Ok(out.freeze())
}

/// Reads one frame: `(id, payload)`; `None` at a clean end of stream.
pub(crate) async fn read_frame(
    rd: &mut (impl tokio::io::AsyncRead + Unpin),
) -> io::Result<Option<(u64, Bytes)>> {
    let mut len = [0u8; 4];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(8..=FRAME_MAX).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("peer frame length {len} out of range"),
        ));
    }
    let mut buf = vec![0u8; len];
    rd.read_exact(&mut buf).await?;
    let mut buf = Bytes::from(buf);
    let id = buf.get_u64();
    Ok(Some((id, buf)))
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> io::Result<T> {
    postcard::from_bytes(payload).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes queued frames to the socket until the queue closes or a write fails.
pub(crate) async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Bytes>) {
    let mut batch = BytesMut::new();
    while let Some(first) = rx.recv().await {
        batch.extend_from_slice(&first);
        while let Ok(more) = rx.try_recv() {
            batch.extend_from_slice(&more);
            if batch.len() > FRAME_MAX {
                break;
            }
        }
        if wr.write_all(&batch).await.is_err() {
            return;
        }
        batch.clear();
    }
    let _ = wr.shutdown().await;
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<PeerReply>>>>;

/// One live connection: frames go out through `tx`; replies are matched to `waiters`.
struct Link {
    tx: mpsc::UnboundedSender<Bytes>,
    waiters: Waiters,
    /// Cleared when the reading side ends.
    alive: Arc<std::sync::atomic::AtomicBool>,
}

impl Link {
    fn is_open(&self) -> bool {
        !self.tx.is_closed() && self.alive.load(Ordering::Acquire)
    }
}

/// Connects to a peer from `local` (this replica's own address in the ensemble, so that the
/// peer sees which replica connects, as with ZooKeeper's quorum connections bound to a
/// server's address), or from any address when `local` is `None` or binding to it fails.
pub(crate) async fn connect(addr: &str, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect(addr).await;
    };
    let mut last = None;
    for target in tokio::net::lookup_host(addr).await? {
        if target.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if local.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Err(e) = socket.bind(SocketAddr::new(local, 0)) {
            tracing::debug!(%local, error = %e, "cannot bind a peer connection; connecting unbound");
            return TcpStream::connect(target).await;
        }
        match socket.connect(target).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e),
        None => TcpStream::connect(addr).await,
    }
}

/// A multiplexed connection to one peer address.
pub(crate) struct PeerClient {
    addr: String,
    local: Option<IpAddr>,
    link: tokio::sync::Mutex<Option<Link>>,
    next_id: AtomicU64,
}

/// Why a request to a peer got no reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// No connection could be made.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The peer's address.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The connection broke (or the message could not be encoded) before the reply came.
    #[error("connection to {0} lost before the reply")]
    Lost(String),
}

impl PeerClient {
    pub(crate) fn new(addr: String, local: Option<IpAddr>) -> Self {
        PeerClient {
            addr,
            local,
            link: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
        }
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends a request and returns the receiver of its reply. Requests sent one after another
    /// through the same client reach the peer in that order.
    pub(crate) async fn send(
        &self,
        req: &PeerRequest,
    ) -> Result<oneshot::Receiver<PeerReply>, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, reply) = oneshot::channel();
        self.enqueue(id, req, Some(done)).await?;
        Ok(reply)
    }

    /// Sends a request that gets no reply (`Touch`).
    pub(crate) async fn post(&self, req: &PeerRequest) -> Result<(), CallError> {
        self.enqueue(0, req, None).await
    }

    async fn enqueue(
        &self,
        id: u64,
        req: &PeerRequest,
        waiter: Option<oneshot::Sender<PeerReply>>,
    ) -> Result<(), CallError> {
        let frame = encode(id, req).map_err(|_| CallError::Lost(self.addr.clone()))?;
        let mut link = self.link.lock().await;
        if !link.as_ref().is_some_and(Link::is_open) {
            *link = Some(self.connect().await?);
        }
        let l = link.as_ref().expect("connected above");
        let waits = waiter.is_some();
        if let Some(done) = waiter {
            l.waiters.lock().expect("waiters lock").insert(id, done);
        }
        // A reader that ended just now cleared the waiters before this insert: check again.
        if l.tx.send(frame).is_err() || !l.alive.load(Ordering::Acquire) {
            if waits {
                l.waiters.lock().expect("waiters lock").remove(&id);
            }
            *link = None;
            return Err(CallError::Lost(self.addr.clone()));
        }
        Ok(())
    }

    /// Sends a request and waits for its reply.
    pub(crate) async fn call(&self, req: &PeerRequest) -> Result<PeerReply, CallError> {
        self.send(req)
            .await?
            .await
            .map_err(|_| CallError::Lost(self.addr.clone()))
    }

    async fn connect(&self) -> Result<Link, CallError> {
        let failed = |source| CallError::Connect {
            addr: self.addr.clone(),
            source,
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect(&self.addr, self.local))
            .await
            .map_err(|_| failed(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")))?
            .map_err(failed)?;
        let _ = stream.set_nodelay(true);
        let (mut rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let waiters: Waiters = Arc::default();
        tokio::spawn(write_loop(wr, rx));
        let reader_waiters = Arc::clone(&waiters);
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let reader_alive = Arc::clone(&alive);
        tokio::spawn(async move {
            while let Ok(Some((id, payload))) = read_frame(&mut rd).await {
                let Ok(reply) = decode::<PeerReply>(&payload) else {
                    break;
                };
                let waiter = reader_waiters.lock().expect("waiters lock").remove(&id);
                if let Some(w) = waiter {
                    let _ = w.send(reply);
                }
            }
            // Fail whatever is still waiting, and make the next send reconnect.
            reader_alive.store(false, Ordering::Release);
            reader_waiters.lock().expect("waiters lock").clear();
        });
        Ok(Link { tx, waiters, alive })
    }
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("addr", &self.addr)
            .finish()
    }
}
