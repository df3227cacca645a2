//! The settings of the client side, with ZooKeeper's names and defaults.

use std::collections::BTreeSet;

/// Settings of the session layer. Defaults are ZooKeeper's.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// `tickTime`: the basic time unit in ms (ZooKeeper's code default 3000; zoo.cfg files
    /// usually say 2000).
    pub tick_ms: u64,
    /// `minSessionTimeout` in ms (default 2 × tickTime).
    pub session_timeout_ms_min: i32,
    /// `maxSessionTimeout` in ms (default 20 × tickTime).
    pub session_timeout_ms_max: i32,
    /// `jute.maxbuffer`: the largest frame accepted.
    pub frame_bytes_max: usize,
    /// `maxClientCnxns`: connections per client IP address (0 = unlimited).
    pub connections_per_ip_max: usize,
    /// All connections together.
    pub connections_max: usize,
    /// `4lw.commands.whitelist`: the four-letter words answered (`*` = all).
    pub four_letter_words: FourLetterWhitelist,
    /// This server's id (1..=254), the high byte of the session ids it creates.
    pub server_id: u8,
    /// The version reported by `srvr`, `stat`, `envi` and `mntr`.
    pub version: String,
    /// The client port, reported by `conf`.
    pub client_port: u16,
    /// The data directory, reported by `conf`.
    pub data_dir: String,
    /// The log directory, reported by `conf`.
    pub data_log_dir: String,
    /// What `srvr`, `stat` and `mntr` report as the server's mode: `standalone`, or `leader`
    /// when zoo.cfg says `standaloneEnabled=false` (a one-member ensemble, as ZooKeeper does).
    pub mode: String,
    /// `zookeeper.DigestAuthenticationProvider.superDigest`: `super:<digest>`; a connection that
    /// authenticates with it bypasses every ACL.
    pub super_digest: Option<String>,
    /// `zookeeper.extendedTypesEnabled`: TTL nodes may be created.
    pub extended_types: bool,
    /// SASL DIGEST-MD5 users (from the JAAS file's `Server` section); empty: no SASL.
    pub sasl_users: std::collections::BTreeMap<String, String>,
    /// `zookeeper.superUser`: a SASL user that bypasses ACLs.
    pub sasl_super_user: Option<String>,
    /// `reconfigEnabled`.
    pub reconfig_enabled: bool,
    /// `zookeeper.enforceQuota`: hard quota limits fail creates and setData with QUOTAEXCEEDED.
    pub enforce_quota: bool,
    /// `zookeeper.enforce.auth.enabled` with `zookeeper.enforce.auth.schemes` (or
    /// `zookeeper.sessionRequireClientSASLAuth`, which means the scheme `sasl`): a connection
    /// must have authenticated with one of these schemes before any other request, else it is
    /// answered SESSIONCLOSEDREQUIRESASLAUTH and closed. Empty: not enforced.
    pub enforce_auth_schemes: Vec<String>,
    /// `zookeeper.request_throttle_max_requests`: the most requests in process at once across
    /// all connections (a write is in process until it is applied); others wait, and their
    /// connections stop being read. 0: no limit (ZooKeeper's default).
    pub request_throttle_max_requests: usize,
    /// `zookeeper.throttled_op_wait_time` (ms): a request that waited longer than this for
    /// the throttle is answered THROTTLEDOP without being run. 0: never.
    pub throttled_op_wait_ms: u64,
    /// `znode.container.checkIntervalMs`: how often empty containers and expired TTL nodes
    /// are looked for.
    pub container_check_interval_ms: u64,
    /// `znode.container.maxPerMinute`: the most such nodes deleted per minute.
    pub container_max_per_minute: u32,
    /// The `server.N` lines of an ensemble member's `/zookeeper/config` (ZooKeeper's dynamic
    /// config, without its `version=` line), from zoo.cfg; `None` on a standalone server,
    /// whose `/zookeeper/config` is the empty node in the tree.
    pub ensemble_config: Option<String>,
}

/// `4lw.commands.whitelist`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FourLetterWhitelist {
    /// `*`: every command.
    All,
    /// Only these (srvr is always allowed, as in ZooKeeper).
    Only(BTreeSet<String>),
}

impl FourLetterWhitelist {
    /// Parses the setting's value: `*` or a comma-separated list.
    pub fn parse(value: &str) -> Self {
        if value.split(',').any(|w| w.trim() == "*") {
            return FourLetterWhitelist::All;
        }
        let mut words: BTreeSet<String> = value
            .split(',')
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty())
            .collect();
        words.insert("srvr".into());
        FourLetterWhitelist::Only(words)
    }

    /// Whether `word` may be answered.
    pub fn allows(&self, word: &str) -> bool {
        match self {
            FourLetterWhitelist::All => true,
            FourLetterWhitelist::Only(words) => words.contains(word),
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        let tick_ms = 3000;
        SessionConfig {
            tick_ms,
            session_timeout_ms_min: 2 * tick_ms as i32,
            session_timeout_ms_max: 20 * tick_ms as i32,
            frame_bytes_max: zk_protocol::jute::DEFAULT_MAX_BUFFER,
            connections_per_ip_max: 60,
            connections_max: 10_000,
            four_letter_words: FourLetterWhitelist::parse("srvr"),
            server_id: 1,
            version: format!("3.9.5-ferrokeeper-{}", env!("CARGO_PKG_VERSION")),
            client_port: 2181,
            data_dir: "data".into(),
            data_log_dir: "data".into(),
            mode: "standalone".into(),
            super_digest: None,
            extended_types: false,
            sasl_users: std::collections::BTreeMap::new(),
            sasl_super_user: None,
            reconfig_enabled: false,
            enforce_quota: false,
            enforce_auth_schemes: Vec::new(),
            request_throttle_max_requests: 0,
            throttled_op_wait_ms: 0,
            container_check_interval_ms: 60_000,
            container_max_per_minute: 10_000,
            ensemble_config: None,
        }
    }
}

impl SessionConfig {
    /// The settings that travel with each write.
    pub fn features(&self) -> zk_datatree::Features {
        zk_datatree::Features {
            extended_types: self.extended_types,
            reconfig_enabled: self.reconfig_enabled,
            enforce_quota: self.enforce_quota,
        }
    }

    /// Clamps a requested session timeout to [min, max], as ZooKeeper negotiates it.
    pub fn negotiate_timeout(&self, requested: i32) -> i32 {
        requested.clamp(self.session_timeout_ms_min, self.session_timeout_ms_max)
    }
}
