//! Three replicas on 127.0.0.1 with the TCP peer transport: writes submitted on the leader
//! and on followers (forwarded, pipelined) are applied everywhere in one order; the leader is
//! stopped under a write load, a new one is elected, every acknowledged write is on the
//! survivors; the old leader restarts and catches up; followers serve read barriers; a
//! replica behind the leader's purged log catches up by snapshot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use zk_consensus::{ApplyListener, Consensus, ConsensusConfig};
use zk_datatree::{Applied, Command, Op};
use zk_protocol::jute::data::{ACL, Id};
use zk_protocol::jute::proto::CreateRequest;
use zk_protocol::{OpCode, Request};

/// The tests of this file run one at a time: each runs three replicas with 150-300 ms
/// election timeouts, and two clusters at once on two cores starve each other into elections.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Default)]
struct Recorder {
    zxids: Mutex<Vec<i64>>,
    resets: Mutex<Vec<i64>>,
}

impl ApplyListener for Recorder {
    fn applied(&self, zxid: i64, _cmd: &Command, _applied: &Applied) {
        self.zxids.lock().unwrap().push(zxid);
    }
    fn reset(&self, zxid: i64) {
        self.resets.lock().unwrap().push(zxid);
    }
}

#[path = "../../ferrokeeper/tests/common/ports.rs"]
mod ports;
use ports::free_port;

fn config(dir: &Path, id: u64, peers: &BTreeMap<u64, String>) -> ConsensusConfig {
    config_snap(dir, id, peers, 0)
}

fn config_snap(
    dir: &Path,
    id: u64,
    peers: &BTreeMap<u64, String>,
    snap_count: u64,
) -> ConsensusConfig {
    let d = dir.join(format!("node{id}"));
    ConsensusConfig {
        node_id: id,
        log_dir: d.clone(),
        state_dir: d,
        // Heartbeat 20 ms, elections after 150-300 ms of silence.
        tick_ms: 400,
        peers: peers.clone(),
        startup_timeout: Some(Duration::from_secs(30)),
        observers: Default::default(),
        snap_count,
        dynamic_config: None,
        standalone_enabled: true,
    }
}

fn session_cmd(server_id: u8) -> Command {
    Command::internal(
        0,
        0,
        Op::CreateSession {
            timeout_ms: 30_000,
            server_id,
        },
    )
}

fn create(session: i64, path: String) -> Command {
    Command {
        time_ms: 0,
        session_id: session,
        xid: 1,
        auth: Default::default(),
        features: zk_datatree::Features::default(),
        op: Op::Request(Request::Create(
            OpCode::Create,
            CreateRequest {
                path: Some(path),
                data: Some(Bytes::from_static(b"v")),
                acl: Some(vec![ACL {
                    perms: 31,
                    id: Id {
                        scheme: Some("world".into()),
                        id: Some("anyone".into()),
                    },
                }]),
                flags: 0,
            },
        )),
    }
}

struct Cluster {
    dir: PathBuf,
    peers: BTreeMap<u64, String>,
    nodes: BTreeMap<u64, Consensus>,
}

impl Cluster {
    async fn start(dir: &Path) -> Cluster {
        Cluster::start_snap(dir, 0).await
    }

    async fn start_snap(dir: &Path, snap_count: u64) -> Cluster {
        let peers: BTreeMap<u64, String> = (1..=3)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect();
        let starts = (1..=3).map(|id| {
            let c = config_snap(dir, id, &peers, snap_count);
            tokio::spawn(async move { Consensus::start(c, Arc::new(Recorder::default())).await })
        });
        let mut nodes = BTreeMap::new();
        for (id, start) in (1..=3).zip(starts.collect::<Vec<_>>()) {
            nodes.insert(id, start.await.unwrap().expect("node starts"));
        }
        Cluster {
            dir: dir.to_path_buf(),
            peers,
            nodes,
        }
    }

    async fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((id, _)) = self.nodes.iter().find(|(_, n)| n.is_leader()) {
                return *id;
            }
            assert!(Instant::now() < deadline, "no leader elected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn follower(&self, leader: u64) -> u64 {
        *self.nodes.keys().find(|id| **id != leader).unwrap()
    }

    /// Waits until every running node has applied `zxid`.
    async fn converge(&self, zxid: i64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.nodes.values().any(|n| n.last_applied() < zxid) {
            assert!(
                Instant::now() < deadline,
                "replicas did not converge on {zxid}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Proposes `cmd`, retrying for up to 10 s while leadership moves (as a client would).
async fn propose_retrying(node: &Consensus, cmd: Command) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match node.propose(cmd.clone()).await {
            Ok(z) => return z,
            Err(e) => {
                assert!(Instant::now() < deadline, "propose kept failing: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Proposes `n` creates under `prefix` through `node`, `depth` at a time; returns the zxids.
async fn write_load(node: &Consensus, session: i64, prefix: &str, n: usize) -> Vec<i64> {
    let mut pending = std::collections::VecDeque::new();
    let mut zxids = Vec::new();
    for i in 0..n {
        let p = node
            .submit(create(session, format!("{prefix}{i:05}")))
            .await
            .expect("submitted");
        pending.push_back(p);
        if pending.len() >= 16 {
            zxids.push(pending.pop_front().unwrap().await.expect("committed"));
        }
    }
    while let Some(p) = pending.pop_front() {
        zxids.push(p.await.expect("committed"));
    }
    zxids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_replicate_forward_and_survive_the_leader() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path()).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower(leader);

    // A session (through a follower), then writes on the leader and, forwarded, on a follower.
    let zxid = cluster.nodes[&follower]
        .propose(session_cmd(1))
        .await
        .unwrap();
    cluster.converge(zxid).await;
    let sessions = cluster.nodes[&leader].state().sessions().unwrap();
    assert_eq!(sessions.len(), 1);
    let session = sessions[0].0;
    let on_leader = write_load(&cluster.nodes[&leader], session, "/l", 200).await;
    let on_follower = write_load(&cluster.nodes[&follower], session, "/f", 200).await;
    // Pipelined writes keep their order, forwarded ones too.
    assert!(on_leader.windows(2).all(|w| w[0] < w[1]), "{on_leader:?}");
    assert!(
        on_follower.windows(2).all(|w| w[0] < w[1]),
        "{on_follower:?}"
    );
    assert!(on_leader.last() < on_follower.first());
    // Forwarded writes are applied on the follower before they are acknowledged there.
    let last = *on_follower.last().unwrap();
    assert!(cluster.nodes[&follower].last_applied() >= last);
    cluster.converge(last).await;
    for node in cluster.nodes.values() {
        assert_eq!(
            node.state().node_count(),
            cluster.nodes[&leader].state().node_count()
        );
        assert!(node.state().node("/f00199").unwrap().is_some());
        assert!(node.state().node("/l00199").unwrap().is_some());
    }
    // A read barrier on a follower covers every write acknowledged before it.
    let third = *cluster
        .nodes
        .keys()
        .find(|id| **id != leader && **id != follower)
        .unwrap();
    let barrier = cluster.nodes[&third].read_barrier().await.unwrap();
    assert!(barrier >= last && cluster.nodes[&third].last_applied() >= last);

    // Stop the leader while a follower writes; the others elect a new leader. Every write
    // acknowledged is on both survivors.
    let writer_node = cluster.nodes[&follower].clone();
    let writer = tokio::spawn(async move {
        let mut acked = Vec::new();
        for i in 0..400 {
            match writer_node
                .propose(create(session, format!("/w{i:05}")))
                .await
            {
                Ok(z) => acked.push((i, z)),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stopped = Instant::now();
    let old = cluster.nodes.remove(&leader).unwrap();
    old.shutdown().await.unwrap();
    drop(old);
    let new_leader = cluster.leader().await;
    let elected = stopped.elapsed();
    assert_ne!(new_leader, leader);
    let acked = writer.await.unwrap();
    assert!(
        acked.len() > 100,
        "most writes went through: {}",
        acked.len()
    );
    let max = acked.iter().map(|(_, z)| *z).max().unwrap();
    cluster.converge(max).await;
    for node in cluster.nodes.values() {
        for (i, _) in &acked {
            assert!(
                node.state().node(&format!("/w{i:05}")).unwrap().is_some(),
                "acknowledged /w{i:05} missing"
            );
        }
    }
    eprintln!("new leader elected {elected:?} after the old one stopped");

    // The old leader restarts on its data and ports and catches up.
    let more = write_load(&cluster.nodes[&new_leader], session, "/n", 50).await;
    let restarted = Consensus::start(
        config(&cluster.dir, leader, &cluster.peers),
        Arc::new(Recorder::default()),
    )
    .await
    .expect("restarts");
    cluster.nodes.insert(leader, restarted);
    cluster.converge(*more.last().unwrap()).await;
    let counts: Vec<u64> = cluster
        .nodes
        .values()
        .map(|n| n.state().node_count())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] == w[1]), "{counts:?}");
    // It forwards writes to the new leader as a follower.
    let z = cluster.nodes[&leader]
        .propose(create(session, "/back".into()))
        .await
        .unwrap();
    cluster.converge(z).await;
    assert!(
        cluster.nodes[&new_leader]
            .state()
            .node("/back")
            .unwrap()
            .is_some()
    );
    for node in cluster.nodes.values() {
        node.shutdown().await.unwrap();
    }
}

/// With snapCount 40 the leader snapshots every 40 entries and keeps 4 behind the snapshot:
/// a follower stopped for 600 writes finds its next entries purged and gets the snapshot,
/// streamed on its own connection; it installs it (the listener is told), then follows the
/// log again, and a restart serves the installed tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_behind_the_purged_log_catches_up_by_snapshot() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start_snap(dir.path(), 40).await;
    let leader = cluster.leader().await;
    let lagging = cluster.follower(leader);
    let zxid = cluster.nodes[&leader]
        .propose(session_cmd(1))
        .await
        .unwrap();
    cluster.converge(zxid).await;
    let session = cluster.nodes[&leader].state().sessions().unwrap()[0].0;
    let before = write_load(&cluster.nodes[&leader], session, "/a", 20).await;
    cluster.converge(*before.last().unwrap()).await;

    let stopped = cluster.nodes.remove(&lagging).unwrap();
    stopped.shutdown().await.unwrap();
    drop(stopped);
    let written = write_load(&cluster.nodes[&leader], session, "/b", 600).await;
    let mut last = *written.last().unwrap();
    cluster.converge(last).await;
    // The leader purges only logs no replication is sending: write on until it has purged
    // past the stopped follower's position.
    let stopped_at = *before.last().unwrap() as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut more = 0;
    loop {
        let bounds = cluster.nodes[&leader].log_bounds();
        eprintln!("leader's log (purged, snapshot, last): {bounds:?}");
        if bounds.0 > stopped_at + 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader never purged: {bounds:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let w = write_load(&cluster.nodes[&leader], session, &format!("/c{more}-"), 50).await;
        last = *w.last().unwrap();
        more += 1;
    }
    cluster.converge(last).await;

    let recorder = Arc::new(Recorder::default());
    let restarted = Consensus::start(
        config_snap(&cluster.dir, lagging, &cluster.peers, 40),
        recorder.clone(),
    )
    .await
    .expect("restarts");
    cluster.nodes.insert(lagging, restarted);
    cluster.converge(last).await;
    let resets = recorder.resets.lock().unwrap().clone();
    assert_eq!(resets.len(), 1, "one snapshot installed: {resets:?}");
    assert!(
        resets[0] > before.last().copied().unwrap() + 4,
        "the snapshot covers purged entries: {resets:?}"
    );
    // Entries after the snapshot reach the listener as usual, none before it.
    let applied = recorder.zxids.lock().unwrap().clone();
    assert!(applied.iter().all(|z| *z > resets[0]), "{applied:?}");
    let node = &cluster.nodes[&lagging];
    let reference = &cluster.nodes[&leader];
    assert_eq!(node.state().node_count(), reference.state().node_count());
    for path in ["/a00000", "/a00019", "/b00000", "/b00599"] {
        assert_eq!(
            node.state().node(path).unwrap(),
            reference.state().node(path).unwrap(),
            "{path}"
        );
    }
    assert_eq!(
        node.state().sessions().unwrap(),
        reference.state().sessions().unwrap()
    );

    // It follows the log again: a write forwarded through it is applied everywhere.
    let z = propose_retrying(node, create(session, "/after".into())).await;
    cluster.converge(z).await;
    assert!(reference.state().node("/after").unwrap().is_some());

    // A restart opens the installed tree (and needs no second snapshot).
    let node = cluster.nodes.remove(&lagging).unwrap();
    node.shutdown().await.unwrap();
    drop(node);
    let recorder = Arc::new(Recorder::default());
    let again = Consensus::start(
        config_snap(&cluster.dir, lagging, &cluster.peers, 40),
        recorder.clone(),
    )
    .await
    .expect("restarts again");
    assert!(again.last_applied() >= z);
    assert!(again.state().node("/b00599").unwrap().is_some());
    assert!(again.state().node("/after").unwrap().is_some());
    assert!(recorder.resets.lock().unwrap().is_empty());
    cluster.nodes.insert(lagging, again);
    for node in cluster.nodes.values() {
        node.shutdown().await.unwrap();
    }
}
