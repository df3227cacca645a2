//! Four-letter words, in ZooKeeper's text.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use zk_protocol::frame::FourLetterWord;

use crate::backend::{Backend, walk};
use crate::server::Server;

/// What ZooKeeper answers for most words while its server is not running.
const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// Returns the text answering `word`, as ZooKeeper 3.9 writes it.
pub fn answer<B: Backend>(server: &Server<B>, word: FourLetterWord) -> String {
    let name = word.name();
    if !server.config.four_letter_words.allows(name) {
        return format!("{name} is not executed because it is not in the whitelist.\n");
    }
    if !server.serving() {
        // An ensemble member without a working leader: ZooKeeper's ZooKeeperServer is not
        // running, and the words that need it say so.
        match word {
            FourLetterWord::Srvr
            | FourLetterWord::Stat
            | FourLetterWord::Mntr
            | FourLetterWord::Conf
            | FourLetterWord::Cons
            | FourLetterWord::Crst
            | FourLetterWord::Srst
            | FourLetterWord::Wchs
            | FourLetterWord::Wchc
            | FourLetterWord::Wchp
            | FourLetterWord::Dirs
            | FourLetterWord::Dump => return format!("{NOT_SERVING}\n"),
            FourLetterWord::Hash => return NOT_SERVING.to_string(),
            FourLetterWord::Isro => return "null".to_string(),
            FourLetterWord::Ruok
            | FourLetterWord::Envi
            | FourLetterWord::Gtmk
            | FourLetterWord::Stmk => {}
        }
    }
    match word {
        FourLetterWord::Ruok => "imok".to_string(),
        FourLetterWord::Srvr => srvr(server, false),
        FourLetterWord::Stat => srvr(server, true),
        FourLetterWord::Envi => envi(server),
        FourLetterWord::Mntr => mntr(server),
        FourLetterWord::Isro => "rw".to_string(),
        FourLetterWord::Conf => conf(server),
        FourLetterWord::Cons => cons(server),
        FourLetterWord::Crst => {
            for (_, c) in server.hub.conns.all() {
                c.reset();
            }
            "Connection stats reset.\n".to_string()
        }
        FourLetterWord::Srst => {
            server.hub.stats.reset();
            "Server stats reset.\n".to_string()
        }
        FourLetterWord::Wchs => wchs(server),
        FourLetterWord::Wchc => wch(server, true),
        FourLetterWord::Wchp => wch(server, false),
        FourLetterWord::Dirs => dirs(server),
        FourLetterWord::Dump => dump(server),
        // ZooKeeper's default trace mask; ferrokeeper does not trace by mask.
        FourLetterWord::Gtmk | FourLetterWord::Stmk => "306".to_string(),
        // Tree digests are not kept (ZooKeeper prints nothing when digest is off).
        FourLetterWord::Hash => String::new(),
    }
}

fn latency(server: &Server<impl Backend>) -> (u64, f64, u64) {
    let s = &server.hub.stats;
    let count = s.latency_count.load(Ordering::Relaxed);
    if count == 0 {
        return (0, 0.0, 0);
    }
    let total_ms = s.latency_total_us.load(Ordering::Relaxed) as f64 / 1000.0;
    // ZooKeeper rounds the average to 4 decimals and prints it as a Java double.
    let avg = (total_ms / count as f64 * 10_000.0).round() / 10_000.0;
    (
        s.latency_min_us.load(Ordering::Relaxed) / 1000,
        avg,
        s.latency_max_us.load(Ordering::Relaxed) / 1000,
    )
}

/// `Zookeeper version: …` and the server statistics (`srvr`; `stat` adds a client list).
/// `leader`/`follower` in an ensemble, else the configured mode (`standalone`, or `leader`
/// for a one-member ensemble).
fn mode<B: Backend>(server: &Server<B>) -> &str {
    server.backend.role().unwrap_or(&server.config.mode)
}

fn srvr<B: Backend>(server: &Server<B>, with_clients: bool) -> String {
    let s = &server.hub.stats;
    let (min, avg, max) = latency(server);
    let (connections, _) = server.hub.counts();
    let nodes = node_count(server);
    let mut out = String::new();
    let _ = writeln!(out, "Zookeeper version: {}", version_line(server));
    if with_clients {
        let _ = writeln!(out, "Clients:");
        for (_, c) in server.hub.conns.all() {
            let session = c.session_id.load(Ordering::Relaxed) != 0;
            let _ = writeln!(out, "{})", c.brief(u8::from(session)));
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "Latency min/avg/max: {min}/{avg:?}/{max}");
    let _ = writeln!(
        out,
        "Received: {}",
        s.packets_received.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "Sent: {}", s.packets_sent.load(Ordering::Relaxed));
    let _ = writeln!(out, "Connections: {connections}");
    let _ = writeln!(
        out,
        "Outstanding: {}",
        s.outstanding.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "Zxid: 0x{:x}", server.backend.last_applied());
    let mode = mode(server);
    let _ = writeln!(out, "Mode: {mode}");
    let _ = writeln!(out, "Node count: {nodes}");
    if mode == "leader" {
        let (last, min, max) = proposal_sizes(server);
        let _ = writeln!(out, "Proposal sizes last/min/max: {last}/{min}/{max}");
    }
    out
}

/// The leader's proposal sizes, -1 each before the first (and on a one-member ensemble,
/// whose writes ZooKeeper does not count as proposals).
fn proposal_sizes<B: Backend>(server: &Server<B>) -> (i64, i64, i64) {
    server
        .backend
        .quorum()
        .and_then(|q| q.leader)
        .and_then(|l| l.proposal_sizes)
        .map_or((-1, -1, -1), |(last, min, max)| {
            (last as i64, min as i64, max as i64)
        })
}

fn version_line<B: Backend>(server: &Server<B>) -> String {
    format!(
        "{}, built on {}",
        server.config.version,
        env!("FERROKEEPER_BUILT_ON")
    )
}

/// ZooKeeper's node count includes the root twice (it is stored under "" and "/").
fn node_count<B: Backend>(server: &Server<B>) -> usize {
    server.backend.node_count() + 1
}

fn envi<B: Backend>(server: &Server<B>) -> String {
    let mut out = String::from("Environment:\n");
    let _ = writeln!(out, "zookeeper.version={}", version_line(server));
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let _ = writeln!(out, "host.name={}", host.trim());
    let _ = writeln!(out, "os.name={}", std::env::consts::OS);
    let _ = writeln!(out, "os.arch={}", std::env::consts::ARCH);
    let _ = writeln!(
        out,
        "user.dir={}",
        std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    );
    out
}

fn conf<B: Backend>(server: &Server<B>) -> String {
    let c = &server.config;
    let mut out = String::new();
    let _ = writeln!(out, "clientPort={}", c.client_port);
    let _ = writeln!(out, "secureClientPort=-1");
    let _ = writeln!(out, "dataDir={}", c.data_dir);
    let _ = writeln!(
        out,
        "dataDirSize={}",
        dir_size(std::path::Path::new(&c.data_dir))
    );
    let _ = writeln!(out, "dataLogDir={}", c.data_log_dir);
    let _ = writeln!(
        out,
        "dataLogSize={}",
        dir_size(std::path::Path::new(&c.data_log_dir))
    );
    let _ = writeln!(out, "tickTime={}", c.tick_ms);
    let _ = writeln!(out, "maxClientCnxns={}", c.connections_per_ip_max);
    let _ = writeln!(out, "minSessionTimeout={}", c.session_timeout_ms_min);
    let _ = writeln!(out, "maxSessionTimeout={}", c.session_timeout_ms_max);
    let _ = writeln!(out, "clientPortListenBacklog=-1");
    let _ = writeln!(out, "serverId={}", c.server_id);
    out
}

fn mntr<B: Backend>(server: &Server<B>) -> String {
    let s = &server.hub.stats;
    let (min, avg, max) = latency(server);
    let (connections, watches) = server.hub.counts();
    let (ephemerals, data_size) = server.backend.read(|tree| {
        let mut ephemerals = 0usize;
        let mut size = 0usize;
        walk(tree, "/", |p| {
            if let Some(n) = tree.node(p) {
                size += p.len() + n.data.as_ref().map_or(0, |d| d.len());
                ephemerals += usize::from(n.owner_session().is_some());
            }
        });
        (ephemerals, size)
    });
    let rows: Vec<(&str, String)> = vec![
        ("zk_version", version_line(server)),
        ("zk_server_state", mode(server).to_string()),
        ("zk_avg_latency", format!("{avg:?}")),
        ("zk_max_latency", max.to_string()),
        ("zk_min_latency", min.to_string()),
        (
            "zk_packets_received",
            s.packets_received.load(Ordering::Relaxed).to_string(),
        ),
        (
            "zk_packets_sent",
            s.packets_sent.load(Ordering::Relaxed).to_string(),
        ),
        ("zk_num_alive_connections", connections.to_string()),
        (
            "zk_outstanding_requests",
            s.outstanding.load(Ordering::Relaxed).to_string(),
        ),
        ("zk_znode_count", node_count(server).to_string()),
        ("zk_watch_count", watches.to_string()),
        ("zk_ephemerals_count", ephemerals.to_string()),
        ("zk_approximate_data_size", data_size.to_string()),
        ("zk_global_sessions", server.tracker.len().to_string()),
        (
            "zk_uptime",
            server.started.elapsed().as_millis().to_string(),
        ),
    ];
    let mut rows = rows;
    if let Some(q) = server.backend.quorum() {
        let peer_state = match (q.leader.is_some(), mode(server)) {
            (true, _) => "leading - broadcast",
            (false, "observer") => "observing - broadcast",
            (false, _) => "following - broadcast",
        };
        rows.push(("zk_peer_state", peer_state.to_string()));
        rows.push(("zk_quorum_size", q.quorum_size.to_string()));
        if let Some(l) = q.leader {
            let (last, min, max) = proposal_sizes(server);
            rows.extend([
                ("zk_learners", l.learners.to_string()),
                ("zk_synced_followers", l.synced_followers.to_string()),
                ("zk_synced_non_voting_followers", "0".to_string()),
                ("zk_synced_observers", l.synced_observers.to_string()),
                ("zk_pending_syncs", l.pending_syncs.to_string()),
                ("zk_leader_uptime", l.leader_uptime_ms.to_string()),
                ("zk_last_proposal_size", last.to_string()),
                ("zk_min_proposal_size", min.to_string()),
                ("zk_max_proposal_size", max.to_string()),
            ]);
        }
    }
    rows.into_iter()
        .map(|(k, v)| format!("{k}\t{v}\n"))
        .collect()
}

fn cons<B: Backend>(server: &Server<B>) -> String {
    let mut out = String::new();
    for (_, c) in server.hub.conns.all() {
        let session = c.session_id.load(Ordering::Relaxed) != 0;
        let _ = writeln!(out, "{}", c.full(u8::from(session)));
    }
    out.push('\n');
    out
}

fn wchs<B: Backend>(server: &Server<B>) -> String {
    let pairs = server.hub.watch_pairs();
    let sessions: std::collections::BTreeSet<i64> = pairs.iter().map(|(s, _)| *s).collect();
    let paths: std::collections::BTreeSet<&String> = pairs.iter().map(|(_, p)| p).collect();
    format!(
        "{} connections watching {} paths\nTotal watches:{}\n",
        sessions.len(),
        paths.len(),
        pairs.len()
    )
}

/// `wchc` (by session) or `wchp` (by path).
fn wch<B: Backend>(server: &Server<B>, by_session: bool) -> String {
    let mut groups: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (session, path) in server.hub.watch_pairs() {
        let sid = format!("0x{session:x}");
        let (key, item) = if by_session { (sid, path) } else { (path, sid) };
        groups.entry(key).or_default().push(item);
    }
    let mut out = String::new();
    for (key, items) in groups {
        let _ = writeln!(out, "{key}");
        for item in items {
            let _ = writeln!(out, "\t{item}");
        }
    }
    out.push('\n');
    out
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn dirs<B: Backend>(server: &Server<B>) -> String {
    let c = &server.config;
    format!(
        "datadir_size: {}\nlogdir_size: {}\n",
        dir_size(std::path::Path::new(&c.data_dir)),
        dir_size(std::path::Path::new(&c.data_log_dir))
    )
}

fn dump<B: Backend>(server: &Server<B>) -> String {
    let sessions = server.backend.sessions();
    let mut out = String::from("SessionTracker dump:\n");
    let _ = writeln!(out, "Global Sessions({}):", sessions.len());
    for (id, s) in &sessions {
        let _ = writeln!(out, "0x{id:x}\t{}ms", s.timeout_ms);
    }
    let with: Vec<(i64, Vec<String>)> = server.backend.read(|tree| {
        sessions
            .iter()
            .map(|(id, _)| (*id, tree.ephemerals(*id)))
            .filter(|(_, e)| !e.is_empty())
            .collect()
    });
    let _ = writeln!(out, "ephemeral nodes dump:");
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", with.len());
    for (id, paths) in with {
        let _ = writeln!(out, "0x{id:x}:");
        for p in paths {
            let _ = writeln!(out, "\t{p}");
        }
    }
    let _ = writeln!(out, "Connections dump:");
    for (_, c) in server.hub.conns.all() {
        let _ = writeln!(
            out,
            "\tip: /{} sessionId: 0x{:x}",
            c.peer,
            c.session_id.load(Ordering::Relaxed)
        );
    }
    out
}
