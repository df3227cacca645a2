//! zoo.cfg, read as Apache ZooKeeper reads it: `key=value` lines, `#` comments, unknown keys
//! logged and ignored (never fatal).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use zk_protocol::quorum::ServerSpec;
use zk_session::{FourLetterWhitelist, SessionConfig};

/// The settings ferrokeeper takes from zoo.cfg.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where clients connect.
    pub client_address: IpAddr,
    /// The client port.
    pub client_port: u16,
    /// The state machine's directory.
    pub data_dir: PathBuf,
    /// The Raft log's directory (ZooKeeper's transaction log directory).
    pub data_log_dir: PathBuf,
    /// This server's id (`myid`), 1..=254.
    pub server_id: u8,
    /// The session layer's settings.
    pub session: SessionConfig,
    /// The ensemble from the `server.N` lines: id → peer address (`host:quorumPort`). Empty
    /// for a single server (also when zoo.cfg has one `server.N` line: a one-member
    /// ensemble needs no peer network).
    pub peers: BTreeMap<u64, String>,
    /// The ids of `peers` whose `server.N` line says `:observer`.
    pub observers: std::collections::BTreeSet<u64>,
    /// ZooKeeper's `snapCount` (`zookeeper.snapCount`): log entries between snapshots; 0 is
    /// the default (100 000).
    pub snap_count: u64,
    /// ZooKeeper's `standaloneEnabled` (default true): a reconfig must leave at least two
    /// participants.
    pub standalone_enabled: bool,
    /// Keys that were present but are not used (logged at start-up).
    pub ignored: Vec<String>,
}

impl Default for Config {
    /// `ferrokeeper` with no arguments: port 2181 on all addresses, data in `./data`.
    fn default() -> Self {
        Config {
            client_address: IpAddr::from([0, 0, 0, 0]),
            client_port: 2181,
            data_dir: PathBuf::from("data"),
            data_log_dir: PathBuf::from("data"),
            server_id: 1,
            session: SessionConfig {
                tick_ms: 2000,
                session_timeout_ms_min: 4000,
                session_timeout_ms_max: 40000,
                ..SessionConfig::default()
            },
            peers: BTreeMap::new(),
            observers: Default::default(),
            snap_count: 0,
            standalone_enabled: true,
            ignored: Vec::new(),
        }
    }
}

/// Keys ZooKeeper accepts that change nothing in a single ferrokeeper node (yet).
const KNOWN_UNUSED: &[&str] = &[
    "initLimit",
    "syncLimit",
    "admin.enableServer",
    "admin.serverPort",
    "autopurge.snapRetainCount",
    "autopurge.purgeInterval",
    "preAllocSize",
    "forceSync",
    // An observer is the server whose own server.N line says :observer.
    "peerType",
    "metricsProvider.className",
];

impl Config {
    /// Reads a zoo.cfg file, after the `-D` flags of `SERVER_JVMFLAGS` and `JVMFLAGS`.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Config::parse_with_flags(&text, &jvm_flags())
    }

    /// The configuration with no zoo.cfg: the defaults (port 2181, data in `./data`), then the
    /// `-D` flags.
    pub fn from_flags() -> anyhow::Result<Config> {
        Config::parse_with_flags("", &jvm_flags())
    }

    /// Parses zoo.cfg text.
    #[cfg(test)]
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        Config::parse_with_flags(text, "")
    }

    /// Parses zoo.cfg text after JVM-style flags (`-Dkey=value ...`), as ZooKeeper's scripts
    /// pass them: `-Dzookeeper.K=v` means the zoo.cfg key `K`, other keys are taken as they are
    /// (`java.security.auth.login.config` names the JAAS file); zoo.cfg wins over a flag.
    pub fn parse_with_flags(text: &str, flags: &str) -> anyhow::Result<Config> {
        let mut kv = BTreeMap::new();
        for flag in flags.split_whitespace() {
            if let Some((k, v)) = flag.strip_prefix("-D").and_then(|f| f.split_once('=')) {
                let k = k.strip_prefix("zookeeper.").unwrap_or(k);
                kv.insert(k.to_string(), v.to_string());
            }
        }
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                bail!("zoo.cfg line {}: expected key=value, got {line:?}", n + 1);
            };
            kv.insert(k.trim().to_string(), v.trim().to_string());
        }
        let mut c = Config::default();
        let num = |k: &str, v: &str| -> anyhow::Result<i64> {
            v.parse::<i64>()
                .with_context(|| format!("zoo.cfg: {k}={v} is not a number"))
        };
        let mut min = None;
        let mut max = None;
        for (k, v) in &kv {
            match k.as_str() {
                "tickTime" => c.session.tick_ms = u64::try_from(num(k, v)?)?,
                "dataDir" => c.data_dir = PathBuf::from(v),
                "dataLogDir" => c.data_log_dir = PathBuf::from(v),
                "clientPort" => c.client_port = u16::try_from(num(k, v)?)?,
                "clientPortAddress" => {
                    c.client_address = v
                        .parse()
                        .with_context(|| format!("clientPortAddress={v}"))?
                }
                "maxClientCnxns" => c.session.connections_per_ip_max = usize::try_from(num(k, v)?)?,
                "minSessionTimeout" => min = Some(i32::try_from(num(k, v)?)?),
                "maxSessionTimeout" => max = Some(i32::try_from(num(k, v)?)?),
                "4lw.commands.whitelist" => {
                    c.session.four_letter_words = FourLetterWhitelist::parse(v)
                }
                // ZooKeeper turns an unknown zoo.cfg key K into the system property zookeeper.K.
                "DigestAuthenticationProvider.superDigest"
                | "zookeeper.DigestAuthenticationProvider.superDigest" => {
                    c.session.super_digest = Some(v.clone())
                }
                "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                    c.session.extended_types = v == "true"
                }
                "znode.container.checkIntervalMs" | "zookeeper.znode.container.checkIntervalMs" => {
                    c.session.container_check_interval_ms = u64::try_from(num(k, v)?)?
                }
                "znode.container.maxPerMinute" | "zookeeper.znode.container.maxPerMinute" => {
                    c.session.container_max_per_minute = u32::try_from(num(k, v)?)?
                }
                "java.security.auth.login.config" => {
                    let text = std::fs::read_to_string(v)
                        .with_context(|| format!("reading the JAAS file {v}"))?;
                    c.session.sasl_users = zk_session::sasl::jaas_users(&text);
                }
                "superUser" => c.session.sasl_super_user = Some(v.clone()),
                // Server-side SASL is always DIGEST-MD5 with the JAAS users here.
                "authProvider.sasl" | "authProvider.1" | "fips-mode" => {}
                "reconfigEnabled" => c.session.reconfig_enabled = v == "true",
                "enforceQuota" => c.session.enforce_quota = v == "true",
                "request_throttle_max_requests" => {
                    c.session.request_throttle_max_requests = usize::try_from(num(k, v)?)?
                }
                "throttled_op_wait_time" => {
                    c.session.throttled_op_wait_ms = u64::try_from(num(k, v)?)?
                }
                // A request waits for the throttle without polling, and a request whose
                // connection is gone is never run: both settings are moot here.
                "request_throttle_stall_time" | "request_throttle_drop_stale" => {}
                "enforce.auth.enabled"
                | "enforce.auth.schemes"
                | "sessionRequireClientSASLAuth" => {
                    // Read together below (AuthenticationHelper).
                }
                "standaloneEnabled" => {
                    c.standalone_enabled = v != "false";
                    c.session.mode = if v == "false" { "leader" } else { "standalone" }.into()
                }
                "jute.maxbuffer" => c.session.frame_bytes_max = usize::try_from(num(k, v)?)?,
                "snapCount" => c.snap_count = u64::try_from(num(k, v)?)?,
                k if k.starts_with("server.") => {}
                k if KNOWN_UNUSED.contains(&k) => c.ignored.push(k.to_string()),
                _ => c.ignored.push(k.clone()),
            }
        }
        c.session.enforce_auth_schemes = enforce_auth_schemes(&kv)?;
        if !kv.contains_key("dataLogDir") {
            c.data_log_dir = c.data_dir.clone();
        }
        let tick = i32::try_from(c.session.tick_ms)?;
        c.session.session_timeout_ms_min = min.filter(|&m| m > 0).unwrap_or(2 * tick);
        c.session.session_timeout_ms_max = max.filter(|&m| m > 0).unwrap_or(20 * tick);
        if c.session.session_timeout_ms_min > c.session.session_timeout_ms_max {
            bail!("minSessionTimeout must not be larger than maxSessionTimeout");
        }
        c.server_id = server_id(&kv, &c.data_dir)?;
        (c.peers, c.observers) = peers(&kv)?;
        let one_member = kv.get("standaloneEnabled").is_some_and(|v| v == "false");
        c.session.ensemble_config = ensemble_config(&kv, !c.peers.is_empty() || one_member)?;
        if c.peers.len() > 1 && c.observers.len() == c.peers.len() {
            bail!("an ensemble needs at least one participant (every server.N line says observer)");
        }
        if c.peers.len() > 1 && !c.peers.contains_key(&u64::from(c.server_id)) {
            bail!("myid {} has no server.{} line", c.server_id, c.server_id);
        }
        c.session.server_id = c.server_id;
        c.session.client_port = c.client_port;
        c.session.data_dir = c.data_dir.display().to_string();
        c.session.data_log_dir = c.data_log_dir.display().to_string();
        Ok(c)
    }
}

/// The schemes a connection must have authenticated with, as ZooKeeper's `AuthenticationHelper`
/// reads them: `sessionRequireClientSASLAuth=true` means `sasl`; else `enforce.auth.enabled=true`
/// needs `enforce.auth.schemes` (a comma list of known schemes), or the server does not start.
fn enforce_auth_schemes(kv: &BTreeMap<String, String>) -> anyhow::Result<Vec<String>> {
    let is_true = |k: &str| kv.get(k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if is_true("sessionRequireClientSASLAuth") {
        return Ok(vec!["sasl".into()]);
    }
    if !is_true("enforce.auth.enabled") {
        return Ok(Vec::new());
    }
    let schemes: Vec<String> = kv
        .get("enforce.auth.schemes")
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    if schemes.is_empty() {
        bail!(
            "zookeeper.enforce.auth.enabled is true zookeeper.enforce.auth.schemes must be configured"
        );
    }
    if let Some(unknown) = schemes
        .iter()
        .find(|s| !["digest", "ip", "sasl"].contains(&s.as_str()))
    {
        bail!("Authentication scheme {unknown} is not available.");
    }
    Ok(schemes)
}

/// `SERVER_JVMFLAGS` and `JVMFLAGS`, the variables ZooKeeper's scripts pass to the JVM.
fn jvm_flags() -> String {
    ["JVMFLAGS", "SERVER_JVMFLAGS"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `server.N=host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]`
/// lines of zoo.cfg by id, parsed as ZooKeeper parses them (and as reconfig does).
fn server_lines(kv: &BTreeMap<String, String>) -> anyhow::Result<BTreeMap<u64, ServerSpec>> {
    let mut lines = BTreeMap::new();
    for (k, v) in kv {
        let Some(id) = k.strip_prefix("server.") else {
            continue;
        };
        let id: u64 = id
            .parse()
            .with_context(|| format!("{k}: not a server id"))?;
        let spec = ServerSpec::parse(v.trim()).map_err(|e| {
            anyhow::anyhow!(
                "{k}={v}: {e} (expected host:quorumPort:electionPort[:role][;clientPort])"
            )
        })?;
        lines.insert(id, spec);
    }
    Ok(lines)
}

/// The `server.N` lines as peer addresses (`host:quorumPort`; the election port is not used:
/// openraft elects over the quorum port), and the ids of the observers among them. Empty
/// unless there are at least two.
fn peers(
    kv: &BTreeMap<String, String>,
) -> anyhow::Result<(BTreeMap<u64, String>, std::collections::BTreeSet<u64>)> {
    let lines = server_lines(kv)?;
    if lines.len() < 2 {
        return Ok(Default::default());
    }
    let peers = lines
        .iter()
        .map(|(id, l)| (*id, l.quorum.render()))
        .collect();
    let observers = lines
        .iter()
        .filter(|(_, l)| l.observer)
        .map(|(id, _)| *id)
        .collect();
    Ok((peers, observers))
}

/// ZooKeeper's dynamic configuration as `/zookeeper/config` holds it for an ensemble (or a
/// one-member ensemble with `standaloneEnabled=false`): each `server.N` line in id order with
/// its role spelled out and a port-only client address as `0.0.0.0:port`, one per line (the
/// session layer adds the `version=` line). `None` for a standalone server.
fn ensemble_config(
    kv: &BTreeMap<String, String>,
    ensemble: bool,
) -> anyhow::Result<Option<String>> {
    let lines = server_lines(kv)?;
    if !ensemble || lines.is_empty() {
        return Ok(None);
    }
    let out: Vec<String> = lines
        .iter()
        .map(|(id, l)| format!("server.{id}={}", l.render()))
        .collect();
    Ok(Some(out.join("\n")))
}

/// The server id: `myid` in dataDir if present, else the only `server.N` line, else 1.
fn server_id(kv: &BTreeMap<String, String>, data_dir: &Path) -> anyhow::Result<u8> {
    let from_file = std::fs::read_to_string(data_dir.join("myid")).ok();
    let servers: Vec<&str> = kv
        .keys()
        .filter_map(|k| k.strip_prefix("server."))
        .collect();
    let id = match (from_file, servers.as_slice()) {
        (Some(text), _) => text.trim().parse::<u64>().context("myid")?,
        (None, [one]) => one.parse::<u64>().context("server.N")?,
        (None, []) => 1,
        (None, _) => {
            bail!("several server.N lines need a myid file in dataDir, as in ZooKeeper")
        }
    };
    u8::try_from(id)
        .ok()
        .filter(|id| (1..=254).contains(id))
        .ok_or_else(|| anyhow::anyhow!("server id {id} must be in 1..=254"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_apache_zoo_cfg() {
        let c = Config::parse(
            "# sample\ntickTime=2000\ninitLimit=10\ndataDir=/tmp/zk\nclientPort=2182\n\
             clientPortAddress=127.0.0.1\nmaxClientCnxns=0\n4lw.commands.whitelist=*\n\
             DigestAuthenticationProvider.superDigest=super:x\n\
             server.1=127.0.0.1:2183:2184:participant;127.0.0.1:2182\n",
        )
        .unwrap();
        assert_eq!(c.client_port, 2182);
        assert_eq!(c.data_log_dir, PathBuf::from("/tmp/zk"));
        assert_eq!(c.session.connections_per_ip_max, 0);
        assert_eq!(
            (
                c.session.session_timeout_ms_min,
                c.session.session_timeout_ms_max
            ),
            (4000, 40000)
        );
        assert_eq!(c.session.four_letter_words, FourLetterWhitelist::All);
        assert_eq!(c.server_id, 1);
        assert_eq!(c.session.super_digest.as_deref(), Some("super:x"));
        assert!(Config::parse("tickTime=abc\n").is_err());
        let flagged = Config::parse_with_flags(
            "tickTime=3000\n",
            "-Xmx1g -Dzookeeper.extendedTypesEnabled=true -Dzookeeper.superUser=admin -DtickTime=9",
        )
        .unwrap();
        assert!(flagged.session.extended_types);
        assert_eq!(flagged.session.sasl_super_user.as_deref(), Some("admin"));
        assert_eq!(flagged.session.tick_ms, 3000, "zoo.cfg wins over a flag");
        assert!(Config::parse("just words\n").is_err());
    }

    #[test]
    fn reads_quota_and_auth_enforcement() {
        let c = Config::parse_with_flags(
            "",
            "-Dzookeeper.enforceQuota=true -Dzookeeper.enforce.auth.enabled=true \
             -Dzookeeper.enforce.auth.schemes=sasl,digest",
        )
        .unwrap();
        assert!(c.session.enforce_quota);
        assert_eq!(c.session.enforce_auth_schemes, ["sasl", "digest"]);
        let c = Config::parse_with_flags(
            "throttled_op_wait_time=20\n",
            "-Dzookeeper.request_throttle_max_requests=500",
        )
        .unwrap();
        assert_eq!(
            (
                c.session.request_throttle_max_requests,
                c.session.throttled_op_wait_ms
            ),
            (500, 20)
        );
        let c = Config::parse("sessionRequireClientSASLAuth=true\n").unwrap();
        assert_eq!(c.session.enforce_auth_schemes, ["sasl"]);
        assert!(
            Config::parse("")
                .unwrap()
                .session
                .enforce_auth_schemes
                .is_empty()
        );
        // ZooKeeper refuses to start with enforcement but no scheme, or an unknown scheme.
        assert!(Config::parse("enforce.auth.enabled=true\n").is_err());
        assert!(
            Config::parse("enforce.auth.enabled=true\nenforce.auth.schemes=kerberos\n").is_err()
        );
    }

    #[test]
    fn reads_an_ensemble_with_an_observer_and_snap_count() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "4\n").unwrap();
        let c = Config::parse(&format!(
            "dataDir={}\nsnapCount=500\npeerType=observer\n\
             server.1=127.0.0.1:2888:3888;2181\nserver.2=127.0.0.1:2889:3889:participant;2182\n\
             server.3=127.0.0.1:2890:3890;2183\nserver.4=127.0.0.1:2891:3891:observer;2184\n",
            dir.path().display()
        ))
        .unwrap();
        assert_eq!(c.server_id, 4);
        assert_eq!(c.snap_count, 500);
        assert_eq!(c.peers.len(), 4);
        assert_eq!(c.peers[&4], "127.0.0.1:2891");
        assert_eq!(c.observers, std::collections::BTreeSet::from([4]));
        assert_eq!(
            c.session.ensemble_config.as_deref(),
            Some(
                "server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
                 server.2=127.0.0.1:2889:3889:participant;0.0.0.0:2182\n\
                 server.3=127.0.0.1:2890:3890:participant;0.0.0.0:2183\n\
                 server.4=127.0.0.1:2891:3891:observer;0.0.0.0:2184"
            )
        );
        // One server line: an ensemble of one only with standaloneEnabled=false.
        let one = "server.1=127.0.0.1:2888:3888;127.0.0.1:2181\n";
        assert_eq!(Config::parse(one).unwrap().session.ensemble_config, None);
        assert_eq!(
            Config::parse(&format!("standaloneEnabled=false\n{one}"))
                .unwrap()
                .session
                .ensemble_config
                .as_deref(),
            Some("server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181")
        );
        assert!(c.ignored.iter().all(|k| k != "snapCount"));
        assert!(
            Config::parse(&format!(
                "dataDir={}\nserver.1=127.0.0.1:1:2:observer\nserver.4=127.0.0.1:3:4:observer\n",
                dir.path().display()
            ))
            .is_err(),
            "an ensemble of observers only"
        );
    }
}
