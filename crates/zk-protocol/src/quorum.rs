//! ZooKeeper's dynamic configuration: the `server.N=...` specs of zoo.cfg and of
//! `/zookeeper/config`, and the membership changes a `reconfig` request asks for — parsed,
//! checked and printed as Apache ZooKeeper 3.9's `QuorumPeer.QuorumServer`, `QuorumMaj` and
//! `PrepRequestProcessor` do, down to the order of the lines.
//!
//! That order is the iteration order of the `java.util.HashMap<Long, QuorumServer>` ZooKeeper
//! builds (a copy of the last configuration, then the leaving servers removed and the joining
//! ones put), which [`JavaOrder`] reproduces: bucket by bucket for the table size the copy
//! constructor and the puts arrive at (Java 17's sizing), insertion order within a bucket.
//! A configuration given whole (`newMembers`) is taken in the order written (ZooKeeper goes
//! through `Properties`, whose order only matters for ids equal modulo the table size).

use crate::ErrorCode;

/// Why a spec or a reconfig request is refused, as ZooKeeper answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A `ConfigException` or a `BadArgumentsException`: BADARGUMENTS.
    BadArguments(String),
    /// An exception ZooKeeper does not expect there (a number that does not parse as a
    /// server id, a port out of range): its catch-all answers MARSHALLINGERROR.
    Malformed(String),
}

impl ConfigError {
    /// The error code a client gets.
    pub fn code(&self) -> ErrorCode {
        match self {
            ConfigError::BadArguments(_) => ErrorCode::BadArguments,
            ConfigError::Malformed(_) => ErrorCode::MarshallingError,
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::BadArguments(m) | ConfigError::Malformed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ConfigError {}

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError::BadArguments(msg.into())
}

/// A host and port as ZooKeeper keeps them (`InetSocketAddress`, printed by its host string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// The host as written (brackets of an IPv6 literal removed).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl HostPort {
    /// `host:port`, an IPv6 host in brackets (`QuorumServer.delimitedHostString`).
    pub fn render(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether ZooKeeper leaves the address out of its duplicate check (wildcard and
    /// loopback addresses).
    fn is_special(&self) -> bool {
        let h = self.host.as_str();
        h == "localhost"
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified() || ip.is_loopback())
    }
}

/// One server of the configuration: `host:quorumPort:electionPort[:role][;client[;secure]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    /// The quorum (peer) address.
    pub quorum: HostPort,
    /// The election port (ferrokeeper does not use it; ZooKeeper requires it).
    pub election_port: u16,
    /// An observer (a learner) rather than a participant (a voter).
    pub observer: bool,
    /// The client address, if given (a bare port means `0.0.0.0`).
    pub client: Option<HostPort>,
    /// The secure client address, if given.
    pub secure_client: Option<HostPort>,
}

/// `String.split` as Java does it: trailing empty strings removed ("" gives one empty one).
fn java_split(s: &str, sep: char) -> Vec<&str> {
    let mut parts: Vec<&str> = s.split(sep).collect();
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    parts
}

/// `ConfigUtils.getHostAndPort`: `[v6]:rest` or a split on `:`.
fn host_and_port(s: &str) -> Result<Vec<&str>, ConfigError> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| bad(format!("{s} starts with '[' but has no matching ']:'")))?;
        let (host, tail) = rest.split_at(end);
        let tail = &tail[1..];
        let mut out = vec![host];
        match tail.strip_prefix(':') {
            Some(ports) => out.extend(java_split(ports, ':')),
            None if tail.is_empty() => {}
            None => return Err(bad(format!("{s} does not have : after ]"))),
        }
        return Ok(out);
    }
    Ok(java_split(s, ':'))
}

/// `Integer.parseInt` (a `ConfigException` when it fails), then the port range that
/// `InetSocketAddress` enforces (an unexpected exception).
fn port(host: &str, s: &str) -> Result<u16, ConfigError> {
    let n: i64 = s
        .strip_prefix('+')
        .unwrap_or(s)
        .parse::<i32>()
        .map(i64::from)
        .map_err(|_| bad(format!("Address unresolved: {host}:{s}")))?;
    u16::try_from(n).map_err(|_| ConfigError::Malformed(format!("port out of range: {n}")))
}

fn client_addr(s: &str, whole: &str) -> Result<HostPort, ConfigError> {
    let parts = host_and_port(s)?;
    if parts.len() > 2 {
        return Err(bad(format!("{whole}: bad client address")));
    }
    let host = if parts.len() == 2 {
        parts[0]
    } else {
        "0.0.0.0"
    };
    Ok(HostPort {
        host: host.to_string(),
        port: port(host, parts[parts.len() - 1])?,
    })
}

impl ServerSpec {
    /// Parses a spec as `QuorumServer(sid, addressStr)` does (multiple addresses, which
    /// ZooKeeper disables by default, are refused).
    pub fn parse(spec: &str) -> Result<ServerSpec, ConfigError> {
        let parts = java_split(spec, ';');
        let client = match parts.get(1) {
            Some(c) if !c.is_empty() => Some(client_addr(c, spec)?),
            _ => None,
        };
        let secure_client = match parts.get(2) {
            Some(c) if parts.len() == 3 && !c.is_empty() => Some(client_addr(c, spec)?),
            _ => None,
        };
        if parts[0].contains('|') {
            return Err(bad(
                "Multiple address feature is disabled, but multiple addresses were specified",
            ));
        }
        let server = host_and_port(parts[0])?;
        if !(3..=4).contains(&server.len()) {
            return Err(bad(format!(
                "{spec} does not have the form server_config or server_config;client_config"
            )));
        }
        let host = server[0];
        let quorum_port = port(host, server[1])?;
        let election_port = port(host, server[2])?;
        if quorum_port == election_port {
            return Err(bad("Client and election port must be different!"));
        }
        let observer = match server.get(3).map(|t| t.trim().to_ascii_lowercase()) {
            None => false,
            Some(t) if t == "participant" => false,
            Some(t) if t == "observer" => true,
            Some(t) => return Err(bad(format!("Unrecognised peertype: {t}"))),
        };
        Ok(ServerSpec {
            quorum: HostPort {
                host: host.to_string(),
                port: quorum_port,
            },
            election_port,
            observer,
            client,
            secure_client,
        })
    }

    /// The spec as `QuorumServer.toString` prints it.
    pub fn render(&self) -> String {
        let mut out = self.quorum.render();
        out.push_str(&format!(":{}", self.election_port));
        out.push_str(if self.observer {
            ":observer"
        } else {
            ":participant"
        });
        if let Some(c) = &self.client {
            out.push(';');
            out.push_str(&c.render());
        }
        if let Some(s) = &self.secure_client {
            if self.client.is_none() {
                out.push(';');
            }
            out.push(';');
            out.push_str(&s.render());
        }
        out
    }

    /// The addresses the duplicate check compares.
    fn addresses(&self) -> Vec<HostPort> {
        let election = HostPort {
            host: self.quorum.host.clone(),
            port: self.election_port,
        };
        [Some(self.quorum.clone()), self.client.clone()]
            .into_iter()
            .chain([self.secure_client.clone(), Some(election)])
            .flatten()
            .filter(|a| !a.is_special())
            .collect()
    }
}

/// The iteration order of a `java.util.HashMap<Long, _>`: its table size and the keys in
/// insertion order (a removed key loses its place; putting it again appends it).
#[derive(Clone, Debug, Default)]
pub struct JavaOrder {
    capacity: usize,
    threshold: usize,
    keys: Vec<u64>,
}

impl JavaOrder {
    /// `new HashMap<>(m)` for a map iterating as `keys`.
    pub fn copy_of(keys: &[u64]) -> JavaOrder {
        let mut map = JavaOrder::default();
        if !keys.is_empty() {
            // Java 17: tableSizeFor((int) (s / 0.75f + 1.0f)).
            let t = (keys.len() as f32 / 0.75 + 1.0) as usize;
            map.threshold = t.next_power_of_two();
        }
        for k in keys {
            map.put(*k);
        }
        map
    }

    /// `put(k, _)`: a new key goes last (an existing one keeps its place).
    pub fn put(&mut self, key: u64) {
        if self.keys.contains(&key) {
            return;
        }
        if self.capacity == 0 {
            self.capacity = if self.threshold > 0 {
                self.threshold
            } else {
                16
            };
            self.threshold = (self.capacity as f32 * 0.75) as usize;
        }
        self.keys.push(key);
        if self.keys.len() > self.threshold {
            let old = self.capacity;
            self.capacity *= 2;
            self.threshold = if old >= 16 {
                self.threshold * 2
            } else {
                (self.capacity as f32 * 0.75) as usize
            };
        }
    }

    /// `remove(k)`.
    pub fn remove(&mut self, key: u64) {
        self.keys.retain(|k| *k != key);
    }

    /// The keys in iteration order: by bucket, then by insertion.
    pub fn keys(&self) -> Vec<u64> {
        let cap = self.capacity.max(1) as u32;
        let bucket = |k: u64| {
            let h = (k ^ (k >> 32)) as u32;
            (h ^ (h >> 16)) & (cap - 1)
        };
        let mut keys: Vec<(u32, usize, u64)> = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| (bucket(*k), i, *k))
            .collect();
        keys.sort_unstable();
        keys.into_iter().map(|(_, _, k)| k).collect()
    }
}

/// A configuration: its servers in ZooKeeper's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumConfig {
    /// Server id and spec, in the order ZooKeeper prints them.
    pub servers: Vec<(u64, ServerSpec)>,
}

/// `server.N` → N, as `Long.parseLong` of what follows the last dot (an unexpected exception
/// when it is not a number).
fn server_id(key: &str) -> Result<u64, ConfigError> {
    let id = &key[key.rfind('.').map_or(0, |i| i + 1)..];
    id.parse::<i64>()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| ConfigError::Malformed(format!("For input string: \"{id}\"")))
}

impl QuorumConfig {
    /// Reads the `server.N=spec` lines of a configuration text (`version=` and blank lines
    /// are skipped), keeping their order.
    pub fn parse(text: &str) -> Result<QuorumConfig, ConfigError> {
        let mut servers: Vec<(u64, ServerSpec)> = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (key, value) = line
                .split_once(['=', ':'])
                .map_or((line, ""), |(k, v)| (k.trim(), v.trim()));
            if key == "version" {
                continue;
            }
            if !key.starts_with("server.") {
                return Err(bad(format!("Unrecognised parameter: {key}")));
            }
            let id = server_id(key)?;
            let spec = ServerSpec::parse(value)?;
            servers.retain(|(other, _)| *other != id);
            servers.push((id, spec));
        }
        Ok(QuorumConfig { servers })
    }

    /// The voting members' ids.
    pub fn voters(&self) -> impl Iterator<Item = u64> + '_ {
        self.servers
            .iter()
            .filter(|(_, s)| !s.observer)
            .map(|(id, _)| *id)
    }

    /// The server lines, each ending with a newline (ZooKeeper then adds `version=<hex>`).
    pub fn render(&self) -> String {
        self.servers
            .iter()
            .map(|(id, s)| format!("server.{id}={}\n", s.render()))
            .collect()
    }

    /// The configuration an incremental reconfig asks for (`joining`, `leaving`: the
    /// comma-separated lists of the request), as `PrepRequestProcessor` builds it.
    pub fn incremental(
        &self,
        joining: Option<&str>,
        leaving: Option<&str>,
    ) -> Result<QuorumConfig, ConfigError> {
        let split = |s: Option<&str>| -> Vec<String> {
            s.map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
        };
        let ids: Vec<u64> = self.servers.iter().map(|(id, _)| *id).collect();
        let mut order = JavaOrder::copy_of(&ids);
        let mut specs: std::collections::HashMap<u64, ServerSpec> =
            self.servers.iter().cloned().collect();
        for leaving in split(leaving) {
            let id = leaving
                .parse::<i64>()
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    ConfigError::Malformed(format!("For input string: \"{leaving}\""))
                })?;
            order.remove(id);
            specs.remove(&id);
        }
        for joiner in split(joining) {
            let parts: Vec<&str> = joiner
                .split('=')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            let [key, value] = parts.as_slice() else {
                return Err(bad("Wrong format of server string"));
            };
            let id = server_id(key)?;
            let spec = ServerSpec::parse(value).map_err(|e| match e {
                ConfigError::BadArguments(_) => bad("Reconfiguration failed"),
                other => other,
            })?;
            if spec.client.is_none() && spec.secure_client.is_none() {
                return Err(bad(
                    "Wrong format of server string - each server should have at least 3 ports specified",
                ));
            }
            let mine = spec.addresses();
            for (other_id, other) in &specs {
                if *other_id == id {
                    continue;
                }
                let theirs = other.addresses();
                if let Some(a) = mine.iter().find(|a| theirs.contains(a)) {
                    return Err(bad(format!(
                        "{} of server.{id} conflicts {} of server.{other_id}",
                        a.render(),
                        a.render()
                    )));
                }
            }
            order.remove(id);
            order.put(id);
            specs.insert(id, spec);
        }
        Ok(QuorumConfig::in_order(&order, specs))
    }

    /// The servers of `specs` in the iteration order of `order`.
    fn in_order(
        order: &JavaOrder,
        mut specs: std::collections::HashMap<u64, ServerSpec>,
    ) -> QuorumConfig {
        let servers = order
            .keys()
            .into_iter()
            .filter_map(|id| specs.remove(&id).map(|s| (id, s)))
            .collect();
        QuorumConfig { servers }
    }

    /// The configuration a non-incremental reconfig gives (`newMembers`: servers separated
    /// by commas or newlines), with `QuorumPeerConfig.parseDynamicConfig`'s checks.
    pub fn whole(new_members: &str, standalone_enabled: bool) -> Result<QuorumConfig, ConfigError> {
        let given = QuorumConfig::parse(&new_members.replace(',', "\n"))?;
        let voters = given.voters().count();
        let observers = given.servers.len() - voters;
        if (voters == 0 && (!standalone_enabled || observers > 0))
            || (voters == 1 && standalone_enabled && observers > 0)
        {
            return Err(ConfigError::Malformed(
                "observers without a quorum of participants".into(),
            ));
        }
        let ids: Vec<u64> = given.servers.iter().map(|(id, _)| *id).collect();
        let mut order = JavaOrder::default();
        for id in &ids {
            order.put(*id);
        }
        Ok(QuorumConfig::in_order(
            &order,
            given.servers.into_iter().collect(),
        ))
    }

    /// The checks on the voting members that `PrepRequestProcessor` makes of every new
    /// configuration.
    pub fn check_voters(&self, standalone_enabled: bool) -> Result<(), ConfigError> {
        let voters = self.voters().count();
        if standalone_enabled && voters < 2 {
            return Err(bad(
                "Reconfig failed - new configuration must include at least 2 followers",
            ));
        }
        if voters < 1 {
            return Err(bad(
                "Reconfig failed - new configuration must include at least 1 follower",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one() -> QuorumConfig {
        QuorumConfig::parse("server.1=127.0.0.1:22182:22183:participant;127.0.0.1:22181\n").unwrap()
    }

    /// The texts below are what Apache ZooKeeper 3.9.5 answered for the same requests on a
    /// one-member ensemble (compat probe, 2026-12-02).
    #[test]
    fn incremental_changes_print_as_zookeeper_does() {
        let added = one()
            .incremental(
                Some("server.100=0.0.0.0:41234:41235:observer;0.0.0.0:41236"),
                None,
            )
            .unwrap();
        assert_eq!(
            added.render(),
            "server.100=0.0.0.0:41234:41235:observer;0.0.0.0:41236\n\
             server.1=127.0.0.1:22182:22183:participant;127.0.0.1:22181\n"
        );
        let removed = added.incremental(None, Some("100")).unwrap();
        assert_eq!(removed, one());
        assert_eq!(one().incremental(None, Some("77")).unwrap(), one());
        assert_eq!(one().incremental(None, None).unwrap(), one());
        // A bare client port is 0.0.0.0; a loopback duplicate is allowed.
        let dup = one()
            .incremental(Some("server.7=127.0.0.1:22182:41238:observer;41239"), None)
            .unwrap();
        assert_eq!(
            dup.render(),
            "server.1=127.0.0.1:22182:22183:participant;127.0.0.1:22181\n\
             server.7=127.0.0.1:22182:41238:observer;0.0.0.0:41239\n"
        );
        let leave_one = one().incremental(None, Some("1")).unwrap();
        assert!(leave_one.check_voters(false).is_err());
        assert!(one().check_voters(false).is_ok());
        assert!(one().check_voters(true).is_err());
    }

    #[test]
    fn bad_requests_get_zookeepers_codes() {
        let code = |j: Option<&str>, l: Option<&str>| one().incremental(j, l).unwrap_err().code();
        for (joining, expected) in [
            ("some thing", ErrorCode::BadArguments),
            ("server.7=127.0.0.1:41237;41239", ErrorCode::BadArguments),
            ("server.7=127.0.0.1:41237:41238", ErrorCode::BadArguments),
            ("server.7=h:1:1;5", ErrorCode::BadArguments),
            ("server.7=h:1:2:boss;5", ErrorCode::BadArguments),
            ("server.x=h:1:2;5", ErrorCode::MarshallingError),
            ("server.7=h:1:99999;5", ErrorCode::MarshallingError),
        ] {
            assert_eq!(code(Some(joining), None), expected, "{joining}");
        }
        assert_eq!(code(None, Some("abc")), ErrorCode::MarshallingError);
        let conflict = one()
            .incremental(Some("server.2=10.0.0.1:1:2;3"), None)
            .unwrap()
            .incremental(Some("server.3=10.0.0.1:1:5;6"), None);
        assert_eq!(conflict.unwrap_err().code(), ErrorCode::BadArguments);
        assert_eq!(
            QuorumConfig::whole("garbage", false).unwrap_err().code(),
            ErrorCode::BadArguments
        );
    }

    #[test]
    fn whole_configurations_and_specs_round_trip() {
        let text = "server.1=127.0.0.1:22182:22183:participant;127.0.0.1:22181";
        assert_eq!(QuorumConfig::whole(text, false).unwrap(), one());
        let two = QuorumConfig::whole(&format!("{text},server.2=h:1:2:observer;;[::1]:9"), false)
            .unwrap();
        assert_eq!(
            QuorumConfig::whole("server.2=h:1:2:observer;3", false)
                .unwrap_err()
                .code(),
            ErrorCode::MarshallingError
        );
        assert_eq!(
            two.servers[1].1.render(),
            "h:1:2:observer;;[::1]:9",
            "a secure client address alone keeps its empty client slot"
        );
        assert_eq!(two.voters().collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn java_hash_map_order() {
        // Copy of one entry: a table of 2, so 100 (bucket 0) comes before 1 (bucket 1).
        let mut m = JavaOrder::copy_of(&[1]);
        m.put(100);
        assert_eq!(m.keys(), vec![100, 1]);
        // The default table (16): 17 shares a bucket with 1 and comes after it.
        let mut m = JavaOrder::default();
        for k in [17, 3, 1] {
            m.put(k);
        }
        assert_eq!(m.keys(), vec![17, 1, 3]);
        // Copy of three: a table of 8.
        let mut m = JavaOrder::copy_of(&[1, 2, 3]);
        m.put(9);
        assert_eq!(m.keys(), vec![1, 9, 2, 3]);
    }
}
