//! Quota statistics as ZooKeeper keeps them: `/zookeeper/quota/<path>/zookeeper_limits` marks a
//! quota on `<path>`, and `/zookeeper/quota/<path>/zookeeper_stats` holds the subtree's
//! `count=N,bytes=M`, updated by every create, delete and setData below the deepest quota
//! root (`DataTree.updateQuotaStat`), in place: the stats node's version and mzxid do not move.
//! Hard limits are enforced when `zookeeper.enforceQuota` is on (it defaults to false), by
//! [`check`], at the point of ZooKeeper's `checkQuota`.

use bytes::Bytes;

use zk_protocol::ErrorCode;

use crate::store::{TreeStore, child_path};

const QUOTA_ROOT: &str = "/zookeeper/quota";
const LIMIT_NODE: &str = "zookeeper_limits";
const STAT_NODE: &str = "zookeeper_stats";

fn stat_path(path: &str) -> String {
    format!("{QUOTA_ROOT}{path}/{STAT_NODE}")
}

/// The deepest path with a quota that `path` is in (`getMaxPrefixWithQuota`), if any.
fn quota_root<S: TreeStore + ?Sized>(store: &S, path: &str) -> Option<String> {
    if path.starts_with("/zookeeper") || store.node(QUOTA_ROOT).is_none_or(|q| q.num_children == 0)
    {
        return None;
    }
    let mut candidate = path;
    while !candidate.is_empty() && candidate != "/" {
        if store
            .node(&format!("{QUOTA_ROOT}{candidate}/{LIMIT_NODE}"))
            .is_some()
        {
            return Some(candidate.to_string());
        }
        candidate = &candidate[..candidate.rfind('/').unwrap_or(0)];
    }
    None
}

/// A quota record as ZooKeeper's `StatsTrack` reads and writes it: `key=value` pairs separated
/// by `,` or `;`; a key that is absent reads as -1. Written back with `count` and `bytes` first,
/// then the other keys sorted, after an extra `=` that old parsers skip.
#[derive(Debug, Default, PartialEq, Eq)]
struct StatsTrack(std::collections::BTreeMap<String, i64>);

impl StatsTrack {
    fn parse(data: &[u8]) -> StatsTrack {
        let text = String::from_utf8_lossy(data);
        let mut stats = std::collections::BTreeMap::new();
        for pair in text.split([',', ';']).filter(|p| !p.is_empty()) {
            let mut kv = pair.split('=');
            let key = kv.next().unwrap_or_default();
            // Java parses the second field; an empty one is -1. Unparsable values (Java would
            // throw) are left out, so they read as absent.
            let value = match kv.next() {
                None | Some("") => Some(-1),
                Some(v) => v.parse().ok(),
            };
            if let Some(v) = value {
                stats.insert(key.to_string(), v);
            }
        }
        StatsTrack(stats)
    }

    fn get(&self, key: &str) -> i64 {
        self.0.get(key).copied().unwrap_or(-1)
    }

    fn render(&self) -> String {
        let mut out = format!("count={},bytes={}", self.get("count"), self.get("bytes"));
        let mut rest = self
            .0
            .iter()
            .filter(|(k, _)| *k != "count" && *k != "bytes")
            .peekable();
        if rest.peek().is_some() {
            out.push('=');
            for (k, v) in rest {
                out.push_str(&format!(";{k}={v}"));
            }
        }
        out
    }
}

fn read_stats<S: TreeStore + ?Sized>(store: &S, path: &str) -> Option<StatsTrack> {
    store
        .node(path)
        .map(|n| StatsTrack::parse(n.data.as_deref().unwrap_or_default()))
}

fn write_stats<S: TreeStore + ?Sized>(store: &mut S, root: &str, stats: &StatsTrack) {
    let path = stat_path(root);
    if let Some(mut node) = store.node(&path) {
        node.data = Some(Bytes::from(stats.render()));
        store.put_node(&path, node);
    }
}

/// After a change of `path` by (`count_diff`, `bytes_diff`): updates the stats of its quota
/// (`DataTree.updateQuotaStat`).
pub fn on_change<S: TreeStore + ?Sized>(
    store: &mut S,
    path: &str,
    count_diff: i64,
    bytes_diff: i64,
) {
    let Some(root) = quota_root(store, path) else {
        return;
    };
    let Some(mut stats) = read_stats(store, &stat_path(&root)) else {
        return;
    };
    stats
        .0
        .insert("count".into(), stats.get("count") + count_diff);
    stats
        .0
        .insert("bytes".into(), stats.get("bytes") + bytes_diff);
    write_stats(store, &root, &stats);
}

/// With `zookeeper.enforceQuota`: fails with QUOTAEXCEEDED when a create (`count_diff` 1) or a
/// setData would take the subtree of `path`'s quota beyond a hard limit
/// (`ZooKeeperServer.checkQuota`). Soft limits (`count`, `bytes` in zookeeper_limits) are only
/// logged by ZooKeeper, so they pass here.
pub fn check<S: TreeStore + ?Sized>(
    store: &S,
    path: &str,
    count_diff: i64,
    bytes_diff: i64,
) -> Result<(), ErrorCode> {
    let Some(root) = quota_root(store, path) else {
        return Ok(());
    };
    let Some(limits) = read_stats(store, &format!("{QUOTA_ROOT}{root}/{LIMIT_NODE}")) else {
        return Ok(());
    };
    let check_count =
        count_diff != 0 && (limits.get("count") > -1 || limits.get("countHardLimit") > -1);
    let check_bytes =
        bytes_diff != 0 && (limits.get("bytes") > -1 || limits.get("byteHardLimit") > -1);
    if !check_count && !check_bytes {
        return Ok(());
    }
    let Some(current) = read_stats(store, &stat_path(&root)) else {
        return Ok(());
    };
    let exceeds = |now: &str, hard: &str, diff: i64| {
        let hard_limit = limits.get(hard);
        hard_limit > -1 && current.get(now) + diff > hard_limit
    };
    if (check_count && exceeds("count", "countHardLimit", count_diff))
        || (check_bytes && exceeds("bytes", "byteHardLimit", bytes_diff))
    {
        return Err(ErrorCode::QuotaExceeded);
    }
    Ok(())
}

/// After a create: a new `zookeeper_stats` node gets the current counts of its subtree
/// (`updateQuotaForPath`).
pub fn on_create<S: TreeStore + ?Sized>(store: &mut S, path: &str) {
    let Some(quota_dir) = path
        .strip_suffix(STAT_NODE)
        .and_then(|p| p.strip_suffix('/'))
        .and_then(|p| p.strip_prefix(QUOTA_ROOT))
    else {
        return;
    };
    if quota_dir.is_empty() {
        return;
    }
    let (mut count, mut bytes) = (0, 0);
    let mut stack = vec![quota_dir.to_string()];
    while let Some(p) = stack.pop() {
        let Some(node) = store.node(&p) else {
            continue;
        };
        count += 1;
        bytes += node.data.as_ref().map_or(0, |d| d.len() as i64);
        for child in store.children(&p) {
            stack.push(child_path(&p, &child));
        }
    }
    let mut stats = StatsTrack::default();
    stats.0.insert("count".into(), count);
    stats.0.insert("bytes".into(), bytes);
    write_stats(store, quota_dir, &stats);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_stats_as_zookeeper() {
        let s = StatsTrack::parse(b"count=3,bytes=10");
        assert_eq!((s.get("count"), s.get("bytes")), (3, 10));
        assert_eq!(s.render(), "count=3,bytes=10");
        // zkCli's setquota -N 5 writes this limits record.
        let s = StatsTrack::parse(b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=5");
        assert_eq!(s.get("countHardLimit"), 5);
        assert_eq!(s.get("count"), -1);
        assert_eq!(
            s.render(),
            "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=5"
        );
        let s = StatsTrack::parse(b"garbage");
        assert_eq!((s.get("count"), s.get("bytes")), (-1, -1));
    }
}
