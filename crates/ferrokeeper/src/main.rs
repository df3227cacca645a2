//! ferrokeeper: a coordination server that speaks Apache ZooKeeper's wire protocol.
//!
//! Owns: the command line, zoo.cfg, logging, and the wiring of consensus (openraft over
//! RocksDB) to the session layer. Every write goes through openraft, also on a single node.
//!
//! Usage: `ferrokeeper` (port 2181, data in `./data`), or `ferrokeeper --config zoo.cfg`
//! (also `ferrokeeper zoo.cfg`, as `zkServer.sh start-foreground zoo.cfg` passes it).

mod backend;
mod config;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::{info, warn};
use zk_consensus::{Consensus, ConsensusConfig};
use zk_session::{Hub, Server};

use crate::backend::{ConsensusBackend, HubListener};
use crate::config::Config;

/// mimalloc for every allocation of the process: with its `override` feature it also serves
/// RocksDB's C++ `new` and `malloc`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e`, mimalloc.h v2), which
/// libmimalloc-sys does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed pages before returning them to the OS. Its default, 10 ms, is
/// shorter than the time between the apply batches that reuse them, so under a write load the
/// pages of every batch's buffers were returned and faulted in again: 6-7% of the server's
/// CPU in page faults.
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// Sets [`PURGE_DELAY_MS`] unless `MIMALLOC_PURGE_DELAY` says otherwise. Called before any
/// thread starts (mimalloc's option setters are not thread-safe).
#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: stores a value in mimalloc's option table, which it reads when it next
        // decides whether to purge; no other thread exists yet.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

fn parse_args() -> anyhow::Result<Config> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Config::from_flags(),
        [flag, path] if flag == "--config" || flag == "-c" => {
            Config::from_file(&PathBuf::from(path))
        }
        [path] if !path.starts_with('-') => Config::from_file(&PathBuf::from(path)),
        [flag] if flag == "--version" => {
            println!("ferrokeeper {}", env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        }
        _ => anyhow::bail!("usage: ferrokeeper [--config zoo.cfg]"),
    }
}

fn main() -> anyhow::Result<()> {
    tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = parse_args()?;
    for key in &config.ignored {
        warn!(key, "zoo.cfg key not used by ferrokeeper");
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    std::fs::create_dir_all(&config.data_log_dir)
        .with_context(|| format!("creating {}", config.data_log_dir.display()))?;

    let hub = Arc::new(Hub::default());
    let consensus = Consensus::start(
        ConsensusConfig {
            node_id: u64::from(config.server_id),
            log_dir: config.data_log_dir.join("raft-log"),
            state_dir: config.data_dir.join("state"),
            tick_ms: config.session.tick_ms,
            peers: config.peers.clone(),
            // A member of an ensemble waits for a quorum of its peers as long as it takes.
            startup_timeout: config
                .peers
                .is_empty()
                .then_some(std::time::Duration::from_secs(60)),
            observers: config.observers.clone(),
            snap_count: config.snap_count,
            dynamic_config: config.session.ensemble_config.clone(),
            standalone_enabled: config.standalone_enabled,
        },
        Arc::new(HubListener(Arc::clone(&hub))),
    )
    .await
    .context("starting consensus")?;
    info!(zxid = consensus.last_applied(), "state recovered");

    let address = SocketAddr::new(config.client_address, config.client_port);
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))?;
    info!(%address, "serving clients");
    let backend = Arc::new(ConsensusBackend(
        consensus.clone(),
        !config.peers.is_empty(),
    ));
    let server = Server::new(config.session.clone(), backend, hub);
    // The leader learns which sessions the followers' clients keep alive.
    let tracker_server = Arc::clone(&server);
    consensus.set_touch_handler(Arc::new(move |sessions: Vec<i64>| {
        for id in sessions {
            let known = tracker_server.tracker.touch(id);
            tracing::trace!(
                session = format_args!("0x{id:x}"),
                known,
                "touched by a follower"
            );
        }
    }));
    server.run(listener, shutdown_signal()).await;
    consensus.shutdown().await.context("stopping consensus")?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number is not named by libmimalloc-sys: check it against the defaults of
    /// its neighbours in mimalloc.h (eager_commit_delay 1, purge_delay 10, use_numa_nodes 0),
    /// then that setting it sticks.
    #[test]
    #[allow(unsafe_code)]
    fn purge_delay_is_the_option_tune_allocator_sets() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads and writes mimalloc's option table; this test process's other tests
        // do not touch it.
        let get = |option| unsafe { libmimalloc_sys::mi_option_get(option) };
        assert_eq!(get(libmimalloc_sys::mi_option_eager_commit_delay), 1);
        assert_eq!(get(MI_OPTION_PURGE_DELAY), 10);
        assert_eq!(get(libmimalloc_sys::mi_option_use_numa_nodes), 0);
        tune_allocator();
        assert_eq!(get(MI_OPTION_PURGE_DELAY), PURGE_DELAY_MS);
    }
}
