//! Helpers shared by the server's end-to-end tests: ports, processes, requests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zk_protocol::jute::data::{ACL, Id};
use zk_protocol::jute::proto::{CreateRequest, GetDataRequest, SyncRequest};
use zk_protocol::{OpCode, Request};

#[path = "../../../zk-session/tests/support/raw.rs"]
pub mod raw;
use raw::Raw;

mod ports;
#[allow(unused_imports)] // not every test binary starts servers of its own
pub use ports::free_port;

/// Starts the server binary on `cfg`, its log in a new file in `log_dir`.
pub fn spawn(cfg: &Path, log_dir: &Path) -> Child {
    let log = std::fs::File::create(log_dir.join(format!(
        "server-{}.log",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )))
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_ferrokeeper"))
        .arg("--config")
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// After a failed test: the last lines of each log that [`spawn`] wrote in `log_dir` for
/// the server called `who`, on stderr, so that a CI log shows what the servers were doing.
pub fn print_log_tails(who: &str, log_dir: &Path) {
    const LINES: usize = 40;
    let Ok(entries) = std::fs::read_dir(log_dir) else {
        return;
    };
    let mut logs: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("server-") && n.ends_with(".log"))
        })
        .collect();
    logs.sort();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!(
            "---- server {who}: last {} of {} lines of {} ----",
            lines.len().min(LINES),
            lines.len(),
            log.display()
        );
        for line in &lines[lines.len().saturating_sub(LINES)..] {
            eprintln!("{line}");
        }
    }
}

/// Waits (up to 60 s) until the client port accepts connections.
pub async fn wait_ready(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server on {addr} did not come up");
}

pub fn acl() -> Option<Vec<ACL>> {
    Some(vec![ACL {
        perms: 31,
        id: Id {
            scheme: Some("world".into()),
            id: Some("anyone".into()),
        },
    }])
}

pub fn create(path: &str, flags: i32) -> Request {
    Request::Create(
        OpCode::Create,
        CreateRequest {
            path: Some(path.into()),
            data: Some(Bytes::from(path.as_bytes().to_vec())),
            acl: acl(),
            flags,
        },
    )
}

/// Sends a four-letter word and returns the answer (empty when the port does not answer).
pub async fn four_letter(addr: SocketAddr, word: &str) -> String {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    if s.write_all(word.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out)).await;
    out
}

pub fn sync() -> Request {
    Request::Sync(SyncRequest {
        path: Some("/".into()),
    })
}

pub fn get(path: &str) -> Request {
    Request::GetData(GetDataRequest {
        path: Some(path.into()),
        watch: false,
    })
}

/// A new session on `addr` whose `sync` succeeded (retried for up to 30 s).
pub async fn synced_client(addr: SocketAddr) -> Raw {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(mut c)) = tokio::time::timeout(
            Duration::from_secs(3),
            Raw::connect_with(addr, 0, Bytes::from_static(&[0; 16]), true),
        )
        .await
        {
            let xid = c.send(&sync()).await;
            if let Ok(Some((h, _))) = tokio::time::timeout(Duration::from_secs(3), c.recv()).await
                && h.xid == xid
                && h.err == 0
            {
                return c;
            }
        }
        assert!(Instant::now() < deadline, "no synced session on {addr}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
