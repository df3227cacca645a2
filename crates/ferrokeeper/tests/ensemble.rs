//! A 3-server ensemble of the real binary on 127.0.0.1, configured as ZooKeeper users
//! configure one (`server.N` lines, `myid`): clients on followers write (forwarded) and read
//! (after `sync`) what others wrote; a session kept alive only through a follower outlives its
//! timeout (the follower reports it to the leader); `kill -9` of the leader under a write
//! load: a new leader is elected, every acknowledged write is on the survivors, the session and
//! its ephemeral survive; the old leader restarts and catches up; closing the session deletes
//! the ephemeral everywhere.

mod common;
#[path = "../../zk-session/tests/support/raw.rs"]
mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::{create, free_port, spawn, wait_ready};
use raw::Raw;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zk_protocol::Request;
use zk_protocol::jute::proto::{GetDataRequest, SyncRequest};

struct Server {
    id: u64,
    dir: PathBuf,
    client: SocketAddr,
    child: Option<Child>,
}

impl Server {
    fn start(&mut self) {
        self.child = Some(spawn(&self.dir.join("zoo.cfg"), &self.dir));
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three servers: tickTime 400 ms (elections after 200–400 ms without a leader; session
/// timeouts 800 ms .. 8 s).
fn ensemble(root: &Path) -> Vec<Server> {
    let ports: Vec<(u16, u16, u16)> = (0..3)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, (client, quorum, election))| {
            format!(
                "server.{}=127.0.0.1:{quorum}:{election}:participant;127.0.0.1:{client}\n",
                i + 1
            )
        })
        .collect();
    ports
        .iter()
        .enumerate()
        .map(|(i, (client, _, _))| {
            let id = i as u64 + 1;
            let dir = root.join(format!("s{id}"));
            std::fs::create_dir_all(dir.join("data")).unwrap();
            std::fs::write(dir.join("data/myid"), format!("{id}\n")).unwrap();
            std::fs::write(
                dir.join("zoo.cfg"),
                format!(
                    "tickTime=400\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\n\
                     clientPortAddress=127.0.0.1\nmaxClientCnxns=0\n4lw.commands.whitelist=*\n{servers}",
                    dir.join("data").display()
                ),
            )
            .unwrap();
            Server {
                id,
                dir,
                client: SocketAddr::from(([127, 0, 0, 1], *client)),
                child: None,
            }
        })
        .collect()
}

async fn four_letter(addr: SocketAddr, word: &str) -> String {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    if s.write_all(word.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

/// The id of the server whose `srvr` says `Mode: leader` (waits up to 20 s for one).
async fn leader(servers: &[Server]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for s in servers.iter().filter(|s| s.child.is_some()) {
            if four_letter(s.client, "srvr").await.contains("Mode: leader") {
                return s.id;
            }
        }
        assert!(Instant::now() < deadline, "no server became leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connects with a new session to the first of `servers` that accepts one (waits up to 20 s).
async fn reconnect(servers: &[SocketAddr]) -> Raw {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for addr in servers {
            if let Some(c) =
                Raw::connect_with(*addr, 0, bytes::Bytes::from_static(&[0; 16]), true).await
            {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(Instant::now() < deadline, "no server took a new session");
    }
}

fn get(path: &str) -> Request {
    Request::GetData(GetDataRequest {
        path: Some(path.into()),
        watch: false,
    })
}

fn sync() -> Request {
    Request::Sync(SyncRequest {
        path: Some("/".into()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_serves_clients_on_every_server_and_survives_its_leader() {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = ensemble(dir.path());
    for s in &mut servers {
        s.start();
    }
    for s in &servers {
        wait_ready(s.client).await;
    }
    let lead = leader(&servers).await;
    let followers: Vec<usize> = (0..3).filter(|i| servers[*i].id != lead).collect();
    let (fa, fb) = (followers[0], followers[1]);
    for i in &followers {
        assert!(
            four_letter(servers[*i].client, "srvr")
                .await
                .contains("Mode: follower")
        );
    }

    // A client on a follower writes (forwarded to the leader) and owns an ephemeral.
    let mut a = Raw::connect(servers[fa].client).await;
    assert_eq!(a.timeout, 8000);
    assert_eq!(a.call(&create("/p", 0)).await.0.err, 0);
    assert_eq!(a.call(&create("/e", 1)).await.0.err, 0);
    // A client on the other follower sees it after sync.
    let mut b = Raw::connect(servers[fb].client).await;
    assert_eq!(b.call(&sync()).await.0.err, 0);
    assert_eq!(b.call(&get("/p")).await.0.err, 0);

    // Sessions kept alive only through followers outlive their timeout (8 s); a client of the
    // (healthy) leader stays connected too.
    let lead_index = servers.iter().position(|s| s.id == lead).unwrap();
    let mut l = Raw::connect(servers[lead_index].client).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(10_000) {
        assert_eq!(a.call(&Request::Ping).await.0.err, 0);
        assert_eq!(b.call(&Request::Ping).await.0.err, 0);
        assert_eq!(l.call(&Request::Ping).await.0.err, 0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(b.call(&sync()).await.0.err, 0);
    assert_eq!(
        b.call(&get("/e")).await.0.err,
        0,
        "the leader expired a session its follower kept alive"
    );

    // From here on a's client pings in the background, as client libraries do (every 1 s).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pinger = {
        let stop = std::sync::Arc::clone(&stop);
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(
                    a.call(&Request::Ping).await.0.err,
                    0,
                    "a's follower stays up"
                );
                tokio::time::sleep(Duration::from_millis(1000)).await;
            }
            a
        })
    };

    // b writes (pipelined, 4 in flight) while the leader is killed; it reconnects to the other
    // follower when its server drops it, and retries.
    let b_addr = servers[fb].client;
    let other = servers[fa].client;
    let writer = tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut c = Raw::connect(b_addr).await;
        let mut n = 0;
        let deadline = Instant::now() + Duration::from_secs(4);
        while Instant::now() < deadline {
            let mut sent = Vec::new();
            for _ in 0..4 {
                let path = format!("/w{n:05}");
                sent.push((c.send(&create(&path, 0)).await, path));
                n += 1;
            }
            for (xid, path) in sent {
                match c.recv().await {
                    Some((h, _)) if h.xid == xid && h.err == 0 => acked.push(path),
                    Some(_) => {}
                    None => {
                        // As a client library does: try the servers in turn until one takes a
                        // new session (none does while there is no leader).
                        c = reconnect(&[b_addr, other]).await;
                        break;
                    }
                }
            }
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let killed = servers.iter().position(|s| s.id == lead).unwrap();
    let t = Instant::now();
    servers[killed].kill();
    let new_lead = leader(&servers).await;
    let election = t.elapsed();
    assert_ne!(new_lead, lead);
    let acked = writer.await.unwrap();
    assert!(acked.len() > 50, "{} writes acknowledged", acked.len());

    // Every acknowledged write is on both survivors; the session and its ephemeral survived.
    for i in [fa, fb] {
        let mut c = Raw::connect(servers[i].client).await;
        assert_eq!(c.call(&sync()).await.0.err, 0);
        for path in &acked {
            assert_eq!(
                c.call(&get(path)).await.0.err,
                0,
                "{path} missing on s{}",
                i + 1
            );
        }
        assert_eq!(
            c.call(&get("/e")).await.0.err,
            0,
            "/e missing on s{}",
            i + 1
        );
    }

    // The old leader restarts and catches up.
    servers[killed].start();
    wait_ready(servers[killed].client).await;
    let mut c = Raw::connect(servers[killed].client).await;
    assert_eq!(c.call(&sync()).await.0.err, 0);
    assert_eq!(c.call(&get(acked.last().unwrap())).await.0.err, 0);

    // Closing a's session deletes its ephemeral on every server.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut a = pinger.await.unwrap();
    assert_eq!(a.call(&Request::CloseSession).await.0.err, 0);
    for s in &servers {
        let mut c = Raw::connect(s.client).await;
        assert_eq!(c.call(&sync()).await.0.err, 0);
        assert_eq!(
            c.call(&get("/e")).await.0.err,
            zk_protocol::ErrorCode::NoNode.code()
        );
    }

    // A server left without a majority loses its leader: it disconnects its clients and
    // refuses new ones, so that they move to the majority.
    let last = servers.len() - 1;
    let mut c = Raw::connect(servers[last].client).await;
    for s in &mut servers[..last] {
        s.kill();
    }
    let t = Instant::now();
    let dropped = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match c.recv().await {
                None => return,
                Some(_) => continue,
            }
        }
    })
    .await;
    assert!(
        dropped.is_ok(),
        "the client of a server without a leader stayed connected"
    );
    let disconnected = t.elapsed();
    let refused = Raw::connect_with(
        servers[last].client,
        0,
        bytes::Bytes::from_static(&[0; 16]),
        true,
    )
    .await;
    assert!(
        refused.is_none(),
        "a server without a leader took a new session"
    );
    eprintln!(
        "{} writes acknowledged around the leader's kill; new leader after {election:?}; \
         clients of a server without a majority disconnected after {disconnected:?}",
        acked.len()
    );
}
