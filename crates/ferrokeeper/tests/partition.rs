//! A network partition of a 3-server ensemble of the real binary, in a network namespace of
//! the test's own (`unshare --net`: a private loopback, nothing leaves it). The servers listen
//! on 127.0.0.11, .12 and .13 (ZooKeeper's usual ports 2181/2888/3888) and connect to their
//! peers from their own address, so nftables can cut the leader off from the followers while
//! clients still reach every server. The leader, left without a quorum, stops serving: its
//! client is disconnected, new sessions are refused, its unacknowledged write is lost; the
//! majority elects a new leader, the client moves there with its session and ephemeral and
//! writes. After the partition heals, the old leader follows again and all three servers hold
//! the same tree (every node's data and Stat compared).
//!
//! Needs root, `unshare` (util-linux), `ip` (iproute2) and `nft` (nftables); scripts/test.sh
//! installs them. Without them the test fails and says so.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw::Raw;
use common::{create, four_letter, get, spawn, sync, synced_client, wait_ready};
use zk_protocol::jute::proto::{GetChildrenRequest, GetChildrenResponse, GetDataResponse};
use zk_protocol::jute::{Reader, Record};
use zk_protocol::{ErrorCode, Request};

/// Set in the re-executed test process that runs inside the new network namespace.
const IN_NETNS: &str = "FERROKEEPER_TEST_IN_NETNS";
const TEST_NAME: &str = "a_partitioned_leader_stops_serving_and_the_ensemble_converges";

#[test]
fn a_partitioned_leader_stops_serving_and_the_ensemble_converges() {
    if std::env::var_os(IN_NETNS).is_some() {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(scenario());
        return;
    }
    for (tool, package) in [
        ("unshare", "util-linux"),
        ("ip", "iproute2"),
        ("nft", "nftables"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "this test needs `{tool}` (Debian package {package}) and root; scripts/test.sh \
             installs it"
        );
    }
    let status = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(IN_NETNS, "1")
        .status()
        .expect("running unshare");
    assert!(
        status.success(),
        "the partition scenario failed in its network namespace (needs root): {status}"
    );
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Server {
    ip: String,
    dir: PathBuf,
    client: SocketAddr,
    child: Option<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            common::print_log_tails(&self.ip, &self.dir);
        }
    }
}

fn ensemble(root: &Path) -> Vec<Server> {
    let ips: Vec<String> = (11..=13).map(|n| format!("127.0.0.{n}")).collect();
    let lines: String = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| format!("server.{}={ip}:2888:3888:participant;{ip}:2181\n", i + 1))
        .collect();
    ips.iter()
        .enumerate()
        .map(|(i, ip)| {
            let dir = root.join(format!("s{}", i + 1));
            std::fs::create_dir_all(dir.join("data")).unwrap();
            std::fs::write(dir.join("data/myid"), format!("{}\n", i + 1)).unwrap();
            std::fs::write(
                dir.join("zoo.cfg"),
                format!(
                    "tickTime=400\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort=2181\n\
                     clientPortAddress={ip}\nmaxClientCnxns=0\n4lw.commands.whitelist=*\n{lines}",
                    dir.join("data").display()
                ),
            )
            .unwrap();
            let mut s = Server {
                ip: ip.clone(),
                client: format!("{ip}:2181").parse().unwrap(),
                child: None,
                dir,
            };
            s.child = Some(spawn(&s.dir.join("zoo.cfg"), &s.dir));
            s
        })
        .collect()
}

/// The index of the server among `among` whose `srvr` says leader (waits up to 20 s).
async fn leader(servers: &[Server], among: &[usize]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for i in among {
            if four_letter(servers[*i].client, "srvr")
                .await
                .contains("Mode: leader")
            {
                return *i;
            }
        }
        assert!(Instant::now() < deadline, "no leader among {among:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every node of the tree: path → (data, Stat bytes), read through one client.
async fn tree(c: &mut Raw) -> BTreeMap<String, (Option<Bytes>, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec!["/".to_string()];
    while let Some(path) = stack.pop() {
        let (h, body) = c.call(&get(&path)).await;
        assert_eq!(h.err, 0, "getData {path}");
        let data = GetDataResponse::decode(&mut Reader::new(body)).unwrap();
        let mut stat = bytes::BytesMut::new();
        data.stat.encode(&mut stat);
        // /zookeeper/config is each server's own view of the configuration, stamped with its
        // startup time as ZooKeeper does; it is not part of the replicated tree.
        if path != "/zookeeper/config" {
            out.insert(path.clone(), (data.data, stat.to_vec()));
        }
        let (h, body) = c
            .call(&Request::GetChildren(GetChildrenRequest {
                path: Some(path.clone()),
                watch: false,
            }))
            .await;
        assert_eq!(h.err, 0, "getChildren {path}");
        let children = GetChildrenResponse::decode(&mut Reader::new(body)).unwrap();
        for name in children.children.unwrap_or_default() {
            stack.push(if path == "/" {
                format!("/{name}")
            } else {
                format!("{path}/{name}")
            });
        }
    }
    out
}

async fn scenario() {
    run("ip", &["link", "set", "lo", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let servers = ensemble(dir.path());
    for s in &servers {
        wait_ready(s.client).await;
    }
    let l = leader(&servers, &[0, 1, 2]).await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != l).collect();

    // A client of the leader owns an ephemeral and has written.
    let mut a = synced_client(servers[l].client).await;
    // /zookeeper/config lists the ensemble as ZooKeeper's does (static config: version 0).
    let (h, body) = a.call(&get("/zookeeper/config")).await;
    assert_eq!(h.err, 0);
    let config = GetDataResponse::decode(&mut Reader::new(body)).unwrap();
    assert_eq!(
        config.data.as_deref(),
        Some(
            &b"server.1=127.0.0.11:2888:3888:participant;127.0.0.11:2181\n\
               server.2=127.0.0.12:2888:3888:participant;127.0.0.12:2181\n\
               server.3=127.0.0.13:2888:3888:participant;127.0.0.13:2181\nversion=0"[..]
        )
    );
    assert_eq!(
        (config.stat.version, config.stat.aversion, config.stat.mzxid),
        (-1, -1, 0)
    );
    assert_eq!(a.call(&create("/eph", 1)).await.0.err, 0);
    assert_eq!(a.call(&create("/before", 0)).await.0.err, 0);
    let (session, passwd) = (a.session_id, a.passwd.clone());

    // Cut the leader off from both followers (peer traffic both ways; clients still reach
    // every server).
    let lip = servers[l].ip.clone();
    let fips = format!(
        "{{ {}, {} }}",
        servers[followers[0]].ip, servers[followers[1]].ip
    );
    run("nft", &["add", "table", "inet", "fkpart"]);
    run(
        "nft",
        &[
            "add",
            "chain",
            "inet",
            "fkpart",
            "input",
            "{ type filter hook input priority 0; policy accept; }",
        ],
    );
    for rule in [
        format!("ip saddr {lip} ip daddr {fips} drop"),
        format!("ip saddr {fips} ip daddr {lip} drop"),
    ] {
        let mut args = vec!["add", "rule", "inet", "fkpart", "input"];
        args.extend(rule.split_whitespace());
        run("nft", &args);
    }
    let cut = Instant::now();

    // The leader cannot commit: the write is not acknowledged, and the leader, without a
    // quorum, closes the client's connection.
    let xid = a.send(&create("/minority", 0)).await;
    let outcome = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match a.recv().await {
                None => return None,
                Some((h, _)) if h.xid == xid => return Some(h.err),
                Some(_) => continue,
            }
        }
    })
    .await
    .expect("the minority leader answers or disconnects within 15 s");
    assert_ne!(
        outcome,
        Some(0),
        "a write without a quorum was acknowledged"
    );
    let disconnected = cut.elapsed();
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        Raw::connect_with(servers[l].client, 0, Bytes::from_static(&[0; 16]), true),
    )
    .await;
    assert!(
        matches!(refused, Ok(None) | Err(_)),
        "the minority server took a new session"
    );
    assert!(
        four_letter(servers[l].client, "srvr")
            .await
            .contains("not currently serving requests"),
        "the minority server says it does not serve"
    );

    // The majority elects a leader; the client moves there with its session and ephemeral.
    let new_l = leader(&servers, &followers).await;
    let elected = cut.elapsed();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut a = loop {
        let mut moved = None;
        for f in &followers {
            if let Ok(Some(c)) = tokio::time::timeout(
                Duration::from_secs(3),
                Raw::connect_seen(servers[*f].client, session, passwd.clone(), true, 0),
            )
            .await
            {
                moved = Some(c);
                break;
            }
        }
        if let Some(c) = moved {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "no majority server took the session"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let moved = cut.elapsed();
    assert_eq!(a.session_id, session, "the session itself moved");
    assert_eq!(a.call(&sync()).await.0.err, 0);
    assert_eq!(
        a.call(&get("/eph")).await.0.err,
        0,
        "the ephemeral survived"
    );
    for i in 0..50 {
        let path = format!("/majority{i:02}");
        assert_eq!(a.call(&create(&path, 0)).await.0.err, 0, "{path}");
    }

    // Heal. The old leader follows the new one, drops its unacknowledged entry and catches up.
    run("nft", &["delete", "table", "inet", "fkpart"]);
    let healed = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !four_letter(servers[l].client, "srvr")
        .await
        .contains("Mode: follower")
    {
        assert!(Instant::now() < deadline, "the old leader did not rejoin");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rejoined = healed.elapsed();
    let mut trees = Vec::new();
    for s in &servers {
        let mut c = synced_client(s.client).await;
        assert_eq!(c.call(&get("/majority49")).await.0.err, 0);
        assert_eq!(
            c.call(&get("/minority")).await.0.err,
            ErrorCode::NoNode.code(),
            "the write without a quorum is nowhere"
        );
        trees.push(tree(&mut c).await);
    }
    assert!(trees[0].len() > 50, "{} nodes", trees[0].len());
    assert_eq!(trees[0], trees[1], "servers 1 and 2 differ");
    assert_eq!(trees[0], trees[2], "servers 1 and 3 differ");
    eprintln!(
        "partition: client disconnected by the minority leader after {disconnected:?}; new \
         leader s{} after {elected:?}; session moved after {moved:?}; old leader following \
         {rejoined:?} after the heal; {} nodes identical on all three",
        new_l + 1,
        trees[0].len()
    );
}
