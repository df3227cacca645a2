//! kill -9 under a write load, restart: every acknowledged write is there, and a session that
//! has not timed out is still alive with its ephemeral.

mod common;

use std::net::SocketAddr;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::raw::Raw;
use common::{create, free_port, spawn, wait_ready};
use tokio::sync::Mutex;
use zk_protocol::Request;
use zk_protocol::jute::proto::GetDataRequest;

struct Node {
    child: Child,
    addr: SocketAddr,
}

fn start(dir: &std::path::Path, port: u16) -> Node {
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = spawn(&cfg, dir);
    Node {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut node = start(dir.path(), port);
    wait_ready(node.addr).await;

    // A session with an ephemeral, which must outlive the crash (its timeout is 40 s).
    let mut owner = Raw::connect(node.addr).await;
    assert_eq!(owner.call(&create("/eph", 1)).await.0.err, 0);
    let (session_id, passwd) = (owner.session_id, owner.passwd.clone());

    // Writers create /w-<client>-<n> until the kill; each acknowledged path is recorded.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for client in 0..4 {
        let (acked, stop, addr) = (Arc::clone(&acked), Arc::clone(&stop), node.addr);
        writers.push(tokio::spawn(async move {
            let mut c = Raw::connect(addr).await;
            // Each writer keeps 8 creates in flight (pipelined): a reply acknowledges only
            // its own write, so every acknowledged path must survive the kill.
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut sent = Vec::new();
                for _ in 0..8 {
                    let path = format!("/w-{client}-{n}");
                    sent.push((c.send(&create(&path, 0)).await, path));
                    n += 1;
                }
                for (xid, path) in sent {
                    match c.recv().await {
                        Some((h, _)) if h.xid == xid && h.err == 0 => acked.lock().await.push(path),
                        _ => return,
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    node.child.kill().unwrap(); // SIGKILL
    node.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().await.clone();
    assert!(
        acked.len() > 20,
        "only {} writes were acknowledged before the kill",
        acked.len()
    );

    let mut node = start(dir.path(), port);
    wait_ready(node.addr).await;
    let mut c = Raw::connect(node.addr).await;
    for path in &acked {
        let (h, _) = c
            .call(&Request::GetData(GetDataRequest {
                path: Some(path.clone()),
                watch: false,
            }))
            .await;
        assert_eq!(
            h.err, 0,
            "acknowledged {path} is missing after kill -9 and restart"
        );
    }
    let back = Raw::connect_with(node.addr, session_id, passwd, true)
        .await
        .unwrap();
    assert_eq!(
        back.session_id, session_id,
        "the session survived the restart"
    );
    let (h, _) = c
        .call(&Request::GetData(GetDataRequest {
            path: Some("/eph".into()),
            watch: false,
        }))
        .await;
    assert_eq!(h.err, 0, "its ephemeral too");
    eprintln!(
        "{} acknowledged writes, all present after kill -9",
        acked.len()
    );
    node.child.kill().unwrap();
    node.child.wait().unwrap();
}
