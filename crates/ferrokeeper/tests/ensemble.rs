//! A 3-server ensemble of the real binary on 127.0.0.1, configured as ZooKeeper users
//! configure one (`server.N` lines, `myid`): clients on followers write (forwarded) and read
//! (after `sync`) what others wrote; a session kept alive only through a follower outlives its
//! timeout (the follower reports it to the leader); `kill -9` of the leader under a write
//! load: a new leader is elected, every acknowledged write is on the survivors, the session and
//! its ephemeral survive; the old leader restarts and catches up; closing the session deletes
//! the ephemeral everywhere. `kill -9` of a follower: its client reconnects to another server
//! with its session and ephemeral; the follower, restarted after the leader's log moved past
//! it, catches up by snapshot; `mntr` reports the quorum figures; all three end with the same
//! tree.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::raw::Raw;
use common::{create, four_letter, free_port, get, spawn, sync, synced_client, wait_ready};
use zk_protocol::Request;

/// The tests of this file run one at a time: each runs three or four servers with a short
/// tickTime (elections after 150–300 ms), and several ensembles at once on two cores starve
/// each other into elections that are not what a test looks at.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
        if std::thread::panicking() {
            common::print_log_tails(&self.id.to_string(), &self.dir);
        }
    }
}

/// Three servers: tickTime 400 ms (elections after 150–300 ms without a leader; session
/// timeouts 800 ms .. 8 s).
fn ensemble(root: &Path) -> Vec<Server> {
    ensemble_with(root, "")
}

/// [`ensemble`] with more zoo.cfg lines.
fn ensemble_with(root: &Path, extra: &str) -> Vec<Server> {
    ensemble_of(root, &["participant"; 3], extra)
}

/// An ensemble with one server per role (`participant` or `observer`).
fn ensemble_of(root: &Path, roles: &[&str], extra: &str) -> Vec<Server> {
    let ports: Vec<(u16, u16, u16)> = roles
        .iter()
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let servers: String = ports
        .iter()
        .zip(roles)
        .enumerate()
        .map(|(i, ((client, quorum, election), role))| {
            format!(
                "server.{}=127.0.0.1:{quorum}:{election}:{role};127.0.0.1:{client}\n",
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
                     clientPortAddress=127.0.0.1\nmaxClientCnxns=0\n4lw.commands.whitelist=*\n\
                     {extra}{servers}",
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

/// Starts `servers`, waits until each accepts connections, and returns the leader's id.
async fn start_all(servers: &mut [Server]) -> u64 {
    for s in servers.iter_mut() {
        s.start();
    }
    for s in servers.iter() {
        wait_ready(s.client).await;
    }
    leader(servers).await
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

/// Reconnects to a session on one of `servers` (refused while there is no leader) within 20 s;
/// the session must still be there.
async fn resume(servers: &[SocketAddr], session_id: i64, passwd: bytes::Bytes) -> Raw {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for addr in servers {
            if let Some(c) = Raw::connect_with(*addr, session_id, passwd.clone(), true).await {
                assert_eq!(c.session_id, session_id, "session 0x{session_id:x} expired");
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            Instant::now() < deadline,
            "no server took session 0x{session_id:x} back"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_serves_clients_on_every_server_and_survives_its_leader() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut servers = ensemble(dir.path());
    let lead = start_all(&mut servers).await;
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

    // From here on a's client pings in the background, as client libraries do (every 1 s). Its
    // follower drops it if it notices the leader gone before a new one is elected (as
    // ZooKeeper's followers do); it then resumes its session on a follower, as a library does.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pinger = {
        let stop = std::sync::Arc::clone(&stop);
        let survivors = [servers[fa].client, servers[fb].client];
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                a.send(&Request::Ping).await;
                match a.recv().await {
                    Some((h, _)) => assert_eq!(h.err, 0, "a's ping"),
                    None => a = resume(&survivors, a.session_id, a.passwd.clone()).await,
                }
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

/// The value of `key` in a `mntr` answer.
fn mntr_value(mntr: &str, key: &str) -> Option<String> {
    mntr.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('\t').map(str::to_string))
}

/// Polls `word` on `addr` until `ok` holds for its answer (up to 30 s); returns the answer.
async fn until(addr: SocketAddr, word: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = four_letter(addr, word).await;
        if ok(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "{word} on {addr}: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_follower_moves_its_clients_and_catches_up_by_snapshot() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // A snapshot every 100 entries, 10 kept behind it: 2 000 writes leave a stopped follower
    // far behind the leader's log.
    let mut servers = ensemble_with(dir.path(), "snapCount=100\n");
    let lead = start_all(&mut servers).await;
    let lead_i = servers.iter().position(|s| s.id == lead).unwrap();
    let f = (0..3).find(|i| servers[*i].id != lead).unwrap();
    let other = (0..3).find(|i| *i != f && *i != lead_i).unwrap();
    let mntr = until(servers[lead_i].client, "mntr", |m| {
        mntr_value(m, "zk_synced_followers").as_deref() == Some("2")
    })
    .await;
    assert_eq!(
        mntr_value(&mntr, "zk_server_state").as_deref(),
        Some("leader")
    );
    assert_eq!(
        mntr_value(&mntr, "zk_peer_state").as_deref(),
        Some("leading - broadcast")
    );
    assert_eq!(mntr_value(&mntr, "zk_quorum_size").as_deref(), Some("3"));
    assert_eq!(mntr_value(&mntr, "zk_learners").as_deref(), Some("2"));
    let fm = four_letter(servers[f].client, "mntr").await;
    assert_eq!(
        mntr_value(&fm, "zk_peer_state").as_deref(),
        Some("following - broadcast")
    );
    assert_eq!(mntr_value(&fm, "zk_learners"), None, "leader-only rows");

    // SESSIONMOVED: a session reconnected to another server while its old connection is
    // still open; a write through the old connection closes it without a reply (ZooKeeper's
    // leader refuses the stale owner), the new connection writes.
    let mut old = Raw::connect(servers[f].client).await;
    assert_eq!(old.call(&create("/moved-before", 0)).await.0.err, 0);
    let mut new = Raw::connect_with(
        servers[other].client,
        old.session_id,
        old.passwd.clone(),
        true,
    )
    .await
    .expect("the session moves");
    assert_eq!(new.session_id, old.session_id);
    old.send(&create("/stale-write", 0)).await;
    let stale = tokio::time::timeout(Duration::from_secs(10), old.recv())
        .await
        .expect("the stale connection is closed");
    assert!(stale.is_none(), "a stale connection's write got {stale:?}");
    assert_eq!(new.call(&create("/moved-after", 0)).await.0.err, 0);
    assert_eq!(new.call(&get("/stale-write")).await.0.err, -101);
    // Through the leader, too: the session moves back to the leader's server and the
    // follower's connection is the stale one.
    let mut on_leader = Raw::connect_with(
        servers[lead_i].client,
        new.session_id,
        new.passwd.clone(),
        true,
    )
    .await
    .expect("the session moves to the leader");
    new.send(&create("/stale-write", 0)).await;
    let stale = tokio::time::timeout(Duration::from_secs(10), new.recv())
        .await
        .expect("the stale connection is closed");
    assert!(stale.is_none(), "a stale connection's write got {stale:?}");
    assert_eq!(on_leader.call(&Request::CloseSession).await.0.err, 0);

    // A client of the follower owns an ephemeral; the follower is killed; the client
    // reconnects to another server with its session id and password: the session and the
    // ephemeral are there.
    let mut a = Raw::connect(servers[f].client).await;
    assert_eq!(a.call(&create("/eph", 1)).await.0.err, 0);
    let (session, passwd) = (a.session_id, a.passwd.clone());
    servers[f].kill();
    let t = Instant::now();
    assert!(a.closed().await, "the killed follower's connection is gone");
    let mut a = Raw::connect_with(servers[other].client, session, passwd, true)
        .await
        .expect("another server takes the session");
    let reconnected = t.elapsed();
    assert_eq!(a.session_id, session, "the same session, not a new one");
    assert_eq!(a.call(&sync()).await.0.err, 0);
    let (h, _) = a.call(&get("/eph")).await;
    assert_eq!(h.err, 0, "the ephemeral survived the move");

    // 2 000 writes while it is down, pipelined 16 at a time.
    let mut w = Raw::connect(servers[lead_i].client).await;
    let mut n = 0;
    while n < 2000 {
        let mut sent = Vec::new();
        for _ in 0..16 {
            sent.push(w.send(&create(&format!("/s{n:05}"), 0)).await);
            n += 1;
        }
        for xid in sent {
            let (h, _) = w.recv().await.expect("the leader answers");
            assert_eq!((h.xid, h.err), (xid, 0));
        }
    }
    let mntr = until(servers[lead_i].client, "mntr", |m| {
        mntr_value(m, "zk_learners").as_deref() == Some("1")
    })
    .await;
    assert_eq!(
        mntr_value(&mntr, "zk_synced_followers").as_deref(),
        Some("1")
    );
    let sizes: Vec<i64> = [
        "zk_last_proposal_size",
        "zk_min_proposal_size",
        "zk_max_proposal_size",
    ]
    .iter()
    .map(|k| mntr_value(&mntr, k).unwrap().parse().unwrap())
    .collect();
    assert!(
        sizes.iter().all(|s| *s > 0) && sizes[1] <= sizes[2],
        "{sizes:?}"
    );

    // Restarted, it gets the leader's snapshot and serves the whole tree.
    let t = Instant::now();
    servers[f].start();
    wait_ready(servers[f].client).await;
    until(servers[lead_i].client, "mntr", |m| {
        mntr_value(m, "zk_synced_followers").as_deref() == Some("2")
    })
    .await;
    let mut c = synced_client(servers[f].client).await;
    let caught_up = t.elapsed();
    for path in ["/s00000", "/s01999", "/eph"] {
        assert_eq!(
            c.call(&get(path)).await.0.err,
            0,
            "{path} on the restarted follower"
        );
    }
    let logs: String = std::fs::read_dir(&servers[f].dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "log").then(|| std::fs::read_to_string(p).unwrap_or_default())
        })
        .collect();
    assert!(
        logs.contains("snapshot from the leader installed"),
        "the follower caught up by snapshot, not by log"
    );

    // All three end with the same tree: same zxid and node count after a sync on each.
    let mut clients = Vec::new();
    for s in &servers {
        clients.push(synced_client(s.client).await);
    }
    let mut seen = Vec::new();
    for (s, c) in servers.iter().zip(&mut clients) {
        assert_eq!(c.call(&sync()).await.0.err, 0);
        let srvr = four_letter(s.client, "srvr").await;
        let pick = |prefix: &str| {
            srvr.lines()
                .find_map(|l| l.strip_prefix(prefix).map(str::to_string))
                .unwrap()
        };
        seen.push((pick("Zxid: "), pick("Node count: ")));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    eprintln!(
        "client moved to another server in {reconnected:?}; the follower restarted and caught \
         up by snapshot in {caught_up:?}"
    );
}

/// Three participants and an observer (`server.4=…:observer`): the observer replicates,
/// serves reads and forwards writes, `srvr` says `Mode: observer`, the leader counts it in
/// `zk_synced_observers` and not in the quorum; with both followers gone the leader has no
/// quorum although the observer is alive, and stops serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_replicates_and_serves_but_does_not_vote() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut servers = ensemble_of(
        dir.path(),
        &["participant", "participant", "participant", "observer"],
        "",
    );
    // The observer never says Mode: leader.
    let lead = start_all(&mut servers).await;
    let lead_i = servers.iter().position(|s| s.id == lead).unwrap();
    let obs = 3;
    until(servers[obs].client, "srvr", |o| {
        o.contains("Mode: observer")
    })
    .await;
    let mntr = until(servers[lead_i].client, "mntr", |m| {
        mntr_value(m, "zk_synced_observers").as_deref() == Some("1")
            && mntr_value(m, "zk_synced_followers").as_deref() == Some("2")
    })
    .await;
    assert_eq!(mntr_value(&mntr, "zk_quorum_size").as_deref(), Some("3"));
    assert_eq!(mntr_value(&mntr, "zk_learners").as_deref(), Some("3"));
    let om = four_letter(servers[obs].client, "mntr").await;
    assert_eq!(
        mntr_value(&om, "zk_peer_state").as_deref(),
        Some("observing - broadcast")
    );

    // A client of the observer writes (forwarded) and reads; a participant sees the write.
    let mut o = synced_client(servers[obs].client).await;
    assert_eq!(o.call(&create("/via-observer", 0)).await.0.err, 0);
    assert_eq!(o.call(&get("/via-observer")).await.0.err, 0);
    let mut p = synced_client(servers[(lead_i + 1) % 3].client).await;
    assert_eq!(p.call(&get("/via-observer")).await.0.err, 0);
    // It receives what others write.
    let mut l = synced_client(servers[lead_i].client).await;
    assert_eq!(l.call(&create("/via-leader", 0)).await.0.err, 0);
    assert_eq!(o.call(&sync()).await.0.err, 0);
    assert_eq!(o.call(&get("/via-leader")).await.0.err, 0);

    // Both followers gone: the leader and the observer are alive, but one vote of three is no
    // quorum. The leader's client is disconnected.
    for (i, s) in servers.iter_mut().enumerate().take(3) {
        if i != lead_i {
            s.kill();
        }
    }
    let dropped = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if l.recv().await.is_none() {
                return;
            }
        }
    })
    .await;
    assert!(
        dropped.is_ok(),
        "the leader kept serving with only an observer behind it"
    );
}

/// A reconfig request (`joining`, `leaving`: comma-separated; `from`: the expected config
/// version or -1) on `c`: the error code and, on success, `/zookeeper/config`'s data and mzxid.
async fn reconfig(
    c: &mut Raw,
    joining: Option<&str>,
    leaving: Option<&str>,
    from: i64,
) -> (i32, String, i64) {
    use zk_protocol::jute::Record;
    use zk_protocol::jute::proto::{GetDataResponse, ReconfigRequest};
    let (h, body) = c
        .call(&Request::Reconfig(ReconfigRequest {
            joining_servers: joining.map(str::to_string),
            leaving_servers: leaving.map(str::to_string),
            new_members: None,
            cur_config_id: from,
        }))
        .await;
    if h.err != 0 {
        return (h.err, String::new(), 0);
    }
    let r = GetDataResponse::decode(&mut zk_protocol::jute::Reader::new(body)).unwrap();
    let data = String::from_utf8(r.data.unwrap_or_default().to_vec()).unwrap();
    assert_eq!(
        r.stat.mzxid, h.zxid,
        "the config's version is the reconfig's zxid"
    );
    assert!(data.ends_with(&format!("version={:x}", h.zxid)), "{data}");
    (0, data, h.zxid)
}

/// A session on `addr` authenticated as ZooKeeper's super user (`super:test`).
async fn super_client(addr: SocketAddr) -> Raw {
    use zk_protocol::jute::proto::AuthPacket;
    let mut c = synced_client(addr).await;
    let (h, _) = c
        .call(&Request::Auth(AuthPacket {
            r#type: 0,
            scheme: Some("digest".into()),
            auth: Some(bytes::Bytes::from_static(b"super:test")),
        }))
        .await;
    assert_eq!(h.err, 0);
    c
}

/// reconfig with `reconfigEnabled=true`: a fourth server, started with a zoo.cfg that lists
/// the ensemble and itself, joins as a learner and is added as a participant (a voter: the
/// quorum is 4); a follower is removed; each step rewrites `/zookeeper/config` on every
/// server (version = the zxid); a stale version is BADVERSION, a voter that is not running
/// NEWCONFIGNOQUORUM, a client without super NOAUTH; writes go on and reach every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfig_adds_a_server_and_removes_one() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut servers = ensemble_of(
        dir.path(),
        &["participant"; 4],
        "reconfigEnabled=true\nDigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n",
    );
    // The first three know only each other, as a running ensemble's zoo.cfg does.
    let line4 = {
        let cfg = std::fs::read_to_string(servers[3].dir.join("zoo.cfg")).unwrap();
        cfg.lines()
            .find(|l| l.starts_with("server.4="))
            .unwrap()
            .to_string()
    };
    for s in &servers[..3] {
        let path = s.dir.join("zoo.cfg");
        let cfg = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, cfg.replace(&format!("{line4}\n"), "")).unwrap();
    }
    let lead = start_all(&mut servers[..3]).await;
    let lead_i = servers.iter().position(|s| s.id == lead).unwrap();
    let mut admin = super_client(servers[lead_i].client).await;
    assert_eq!(admin.call(&create("/before", 0)).await.0.err, 0);

    // Refusals: no super, a voter that is not running, a stale version.
    let mut plain = synced_client(servers[(lead_i + 1) % 3].client).await;
    let spec4 = line4.trim_start_matches("server.4=");
    let (err, _, _) = reconfig(&mut plain, Some(&line4), None, -1).await;
    assert_eq!(err, -102, "NOAUTH without super");
    let (err, _, _) = reconfig(
        &mut admin,
        Some("server.9=127.0.0.1:1:2:participant;127.0.0.1:3"),
        None,
        -1,
    )
    .await;
    assert_eq!(
        err, 0,
        "one voter down of four still leaves a synced quorum"
    );
    let (err, _, _) = reconfig(
        &mut admin,
        Some("server.8=127.0.0.1:4:5:participant;127.0.0.1:6,server.7=127.0.0.1:7:8;9"),
        None,
        -1,
    )
    .await;
    assert_eq!(err, -13, "three voters down of six: NEWCONFIGNOQUORUM");
    let (err, data, version) = reconfig(&mut admin, None, Some("9"), -1).await;
    assert_eq!(err, 0);
    assert!(!data.contains("server.9="), "{data}");
    let (err, _, _) = reconfig(&mut admin, None, None, version + 1).await;
    assert_eq!(
        err, -103,
        "BADVERSION for a version that is not the current one"
    );

    // The fourth server joins as a learner and catches up.
    servers[3].start();
    wait_ready(servers[3].client).await;
    let mut four = synced_client(servers[3].client).await;
    assert_eq!(four.call(&get("/before")).await.0.err, 0);
    // Added as a participant, from the current version.
    let (err, data, _) = reconfig(&mut admin, Some(&line4), None, version).await;
    assert_eq!(err, 0);
    assert!(data.contains(&format!("server.4={spec4}\n")), "{data}");
    let mntr = until(servers[lead_i].client, "mntr", |m| {
        mntr_value(m, "zk_quorum_size").as_deref() == Some("4")
            && mntr_value(m, "zk_synced_followers").as_deref() == Some("3")
    })
    .await;
    assert_eq!(mntr_value(&mntr, "zk_learners").as_deref(), Some("3"));
    assert_eq!(four.call(&sync()).await.0.err, 0);
    let (h, body) = four.call(&get("/zookeeper/config")).await;
    assert_eq!(h.err, 0);
    assert!(
        String::from_utf8_lossy(&body).contains(&data),
        "server 4 shows the new configuration"
    );

    // A follower leaves; the other three carry on.
    let gone = servers
        .iter()
        .position(|s| s.id != lead && s.id != 4)
        .unwrap();
    let gone_id = servers[gone].id;
    let (err, data, _) = reconfig(&mut admin, None, Some(&gone_id.to_string()), -1).await;
    assert_eq!(err, 0);
    assert!(!data.contains(&format!("server.{gone_id}=")), "{data}");
    until(servers[lead_i].client, "mntr", |m| {
        mntr_value(m, "zk_quorum_size").as_deref() == Some("3")
    })
    .await;
    servers[gone].kill();
    assert_eq!(admin.call(&create("/after", 0)).await.0.err, 0);
    assert_eq!(four.call(&sync()).await.0.err, 0);
    assert_eq!(four.call(&get("/after")).await.0.err, 0);

    // The leader removes itself: answered, then the other two elect a leader between them.
    let (err, data, _) = reconfig(&mut admin, None, Some(&lead.to_string()), -1).await;
    assert_eq!(err, 0);
    assert!(!data.contains(&format!("server.{lead}=")), "{data}");
    let rest: Vec<SocketAddr> = servers
        .iter()
        .filter(|s| s.child.is_some() && s.id != lead)
        .map(|s| s.client)
        .collect();
    let mut c = reconnect(&rest).await;
    let (h, _) = c.call(&create("/last", 0)).await;
    assert_eq!(h.err, 0);
}

/// Sessions asked for at the same moment on every server each get an id of their own, made
/// by the server they connected to, and can write through it. (Every server applies every
/// CreateSession and counts the tokens that match one to its waiting connection from 1:
/// matched by token alone, a connection was handed the session another server had created
/// with the same token, and the two clients' writes then closed each other's connections as
/// a moved session's.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_created_at_once_on_every_server_are_distinct() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut servers = ensemble(dir.path());
    start_all(&mut servers).await;
    for s in &servers {
        synced_client(s.client).await;
    }
    const PER_SERVER: usize = 8;
    let mut tasks = Vec::new();
    for s in &servers {
        for i in 0..PER_SERVER {
            let (addr, id) = (s.client, s.id);
            tasks.push(tokio::spawn(async move {
                let mut c = reconnect(&[addr]).await;
                let (h, _) = c.call(&create(&format!("/s{id}-{i}"), 0)).await;
                (id, c.session_id, h.err, c)
            }));
        }
    }
    let mut ids = std::collections::HashSet::new();
    let mut clients = Vec::new();
    for t in tasks {
        let (server, session, err, c) = t.await.unwrap();
        assert_eq!(
            err, 0,
            "a create through session 0x{session:x} on server {server}"
        );
        assert_eq!(
            (session >> 56) as u64,
            server,
            "session 0x{session:x} on server {server} was made by another server"
        );
        assert!(
            ids.insert(session),
            "session 0x{session:x} handed out twice"
        );
        clients.push(c);
    }
    // Every connection is still open: none was closed as a moved session's.
    for c in &mut clients {
        let (h, _) = c.call(&sync()).await;
        assert_eq!(h.err, 0, "sync on session 0x{:x}", c.session_id);
    }
}
