//! Quota statistics as ZooKeeper keeps them: `/zookeeper/quota/<path>/zookeeper_limits` marks a
//! quota on `<path>`, and `/zookeeper/quota/<path>/zookeeper_stats` holds the subtree's
//! `count=N,bytes=M`, updated by every create, delete and setData below the deepest quota
//! root (`DataTree.updateQuotaStat`), in place: the stats node's version and mzxid do not move.
//! Limits are not enforced (ZooKeeper's `zookeeper.enforceQuota` defaults to false).

use bytes::Bytes;

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

/// Parses `count=N,bytes=M` (extra `=;key=value` flags after it are ignored).
fn parse(data: &[u8]) -> (i64, i64) {
    let text = String::from_utf8_lossy(data);
    let mut count = 0;
    let mut bytes = 0;
    for part in text.split(',') {
        let mut kv = part.splitn(2, '=');
        let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
            continue;
        };
        let v: String = v
            .chars()
            .take_while(|c| *c == '-' || c.is_ascii_digit())
            .collect();
        match k.trim() {
            "count" => count = v.parse().unwrap_or(0),
            "bytes" => bytes = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    (count, bytes)
}

fn write_stats<S: TreeStore + ?Sized>(store: &mut S, root: &str, count: i64, bytes: i64) {
    let path = stat_path(root);
    if let Some(mut node) = store.node(&path) {
        node.data = Some(Bytes::from(format!("count={count},bytes={bytes}")));
        store.put_node(&path, node);
    }
}

/// After a change of `path` by (`count_diff`, `bytes_diff`): updates the stats of its quota.
pub fn on_change<S: TreeStore + ?Sized>(
    store: &mut S,
    path: &str,
    count_diff: i64,
    bytes_diff: i64,
) {
    let Some(root) = quota_root(store, path) else {
        return;
    };
    let (count, bytes) = store
        .node(&stat_path(&root))
        .and_then(|n| n.data)
        .map_or((0, 0), |d| parse(&d));
    write_stats(store, &root, count + count_diff, bytes + bytes_diff);
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
    let root = quota_dir.to_string();
    write_stats(store, &root, count, bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zookeepers_stats_format() {
        assert_eq!(parse(b"count=3,bytes=10"), (3, 10));
        assert_eq!(
            parse(b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=5"),
            (-1, -1)
        );
        assert_eq!(parse(b"garbage"), (0, 0));
    }
}
