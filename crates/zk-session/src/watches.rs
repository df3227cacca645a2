//! The watch registry of this server: one-shot data/exist and child watches, and persistent and
//! persistent-recursive watches (addWatch), by session. Never replicated.
//!
//! Triggering follows ZooKeeper 3.9's two watch managers (`DataTree.dataWatches` and
//! `childWatches`): a persistent watch sits in both, a recursive one only in the data manager
//! and fires for the node and every descendant, but never with NodeChildrenChanged. A session
//! gets at most one event per trigger, however many of its watches match.

use std::collections::{BTreeSet, HashMap};

use zk_protocol::watch::{EventType, WatcherType};

/// Which table a watch lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKind {
    /// One-shot data and exist watches (getData, exists).
    Data,
    /// One-shot child watches (getChildren).
    Child,
    /// Persistent watches (addWatch mode 0): data and child events of the node.
    Persistent,
    /// Persistent recursive watches (addWatch mode 1): data events of the node and its
    /// descendants.
    PersistentRecursive,
}

const KINDS: [WatchKind; 4] = [
    WatchKind::Data,
    WatchKind::Child,
    WatchKind::Persistent,
    WatchKind::PersistentRecursive,
];

/// Watches registered by the sessions connected to this server.
#[derive(Debug, Default)]
pub struct Watches {
    tables: HashMap<WatchKind, HashMap<String, BTreeSet<i64>>>,
    by_session: HashMap<i64, BTreeSet<(WatchKind, String)>>,
}

/// Every ancestor of `path` and the path itself, root first.
fn path_and_ancestors(path: &str) -> Vec<&str> {
    let mut out = vec!["/"];
    for (i, c) in path.char_indices().skip(1) {
        if c == '/' {
            out.push(&path[..i]);
        }
    }
    if path != "/" {
        out.push(path);
    }
    out
}

impl Watches {
    /// Registers a watch of `session_id` on `path`.
    pub fn add(&mut self, kind: WatchKind, path: &str, session_id: i64) {
        self.tables
            .entry(kind)
            .or_default()
            .entry(path.to_string())
            .or_default()
            .insert(session_id);
        self.by_session
            .entry(session_id)
            .or_default()
            .insert((kind, path.to_string()));
    }

    fn has(&self, kind: WatchKind, path: &str, session_id: i64) -> bool {
        self.tables
            .get(&kind)
            .and_then(|t| t.get(path))
            .is_some_and(|s| s.contains(&session_id))
    }

    fn remove(&mut self, kind: WatchKind, path: &str, session_id: i64) -> bool {
        let Some(set) = self.tables.get_mut(&kind).and_then(|t| t.get_mut(path)) else {
            return false;
        };
        let removed = set.remove(&session_id);
        if set.is_empty()
            && let Some(t) = self.tables.get_mut(&kind)
        {
            t.remove(path);
        }
        if let Some(mine) = self.by_session.get_mut(&session_id) {
            mine.remove(&(kind, path.to_string()));
        }
        removed
    }

    /// Takes every one-shot watch of `kind` on `path`.
    fn take(&mut self, kind: WatchKind, path: &str) -> BTreeSet<i64> {
        let taken = self
            .tables
            .get_mut(&kind)
            .and_then(|t| t.remove(path))
            .unwrap_or_default();
        for id in &taken {
            if let Some(mine) = self.by_session.get_mut(id) {
                mine.remove(&(kind, path.to_string()));
            }
        }
        taken
    }

    fn peek(&self, kind: WatchKind, path: &str) -> impl Iterator<Item = i64> + '_ {
        self.tables
            .get(&kind)
            .and_then(|t| t.get(path))
            .into_iter()
            .flatten()
            .copied()
    }

    /// Fires the watches an event on `path` triggers and returns the sessions to notify,
    /// sorted, each once. One-shot watches are consumed; persistent ones stay.
    pub fn fire(&mut self, path: &str, event: EventType) -> Vec<i64> {
        let mut sessions = BTreeSet::new();
        let data_event = matches!(
            event,
            EventType::NodeCreated | EventType::NodeDataChanged | EventType::NodeDeleted
        );
        let child_event = matches!(
            event,
            EventType::NodeChildrenChanged | EventType::NodeDeleted
        );
        if data_event {
            sessions.extend(self.take(WatchKind::Data, path));
            if self
                .tables
                .get(&WatchKind::PersistentRecursive)
                .is_some_and(|t| !t.is_empty())
            {
                for p in path_and_ancestors(path) {
                    sessions.extend(self.peek(WatchKind::PersistentRecursive, p));
                }
            }
        }
        if child_event {
            sessions.extend(self.take(WatchKind::Child, path));
        }
        if data_event || child_event {
            sessions.extend(self.peek(WatchKind::Persistent, path));
        }
        sessions.into_iter().collect()
    }

    /// `DataTree.removeWatch` / `containsWatcher` for a watcher type: which tables it names.
    fn kinds_for(watcher_type: WatcherType) -> &'static [WatchKind] {
        match watcher_type {
            WatcherType::Children => &[WatchKind::Child],
            WatcherType::Data => &[WatchKind::Data],
            WatcherType::Persistent => &[WatchKind::Persistent],
            WatcherType::PersistentRecursive => &[WatchKind::PersistentRecursive],
            WatcherType::Any => &KINDS,
        }
    }

    /// Whether the session has a watch of this type on `path` (checkWatches).
    pub fn contains(&self, watcher_type: WatcherType, path: &str, session_id: i64) -> bool {
        Watches::kinds_for(watcher_type)
            .iter()
            .any(|k| self.has(*k, path, session_id))
    }

    /// Removes the session's watches of this type on `path` (removeWatches); returns whether
    /// there was one.
    pub fn remove_type(&mut self, watcher_type: WatcherType, path: &str, session_id: i64) -> bool {
        let mut removed = false;
        for kind in Watches::kinds_for(watcher_type) {
            removed |= self.remove(*kind, path, session_id);
        }
        removed
    }

    /// Drops every watch of a session.
    pub fn remove_session(&mut self, session_id: i64) {
        let Some(mine) = self.by_session.remove(&session_id) else {
            return;
        };
        for (kind, path) in mine {
            if let Some(t) = self.tables.get_mut(&kind)
                && let Some(set) = t.get_mut(&path)
            {
                set.remove(&session_id);
                if set.is_empty() {
                    t.remove(&path);
                }
            }
        }
    }

    /// Every (session, path) pair with a watch in the data manager (what `wchs`, `wchc` and
    /// `wchp` report in ZooKeeper: data, exist and persistent watches, not child watches),
    /// sorted.
    pub fn pairs(&self) -> Vec<(i64, String)> {
        let mut out: Vec<(i64, String)> = self
            .by_session
            .iter()
            .flat_map(|(id, set)| {
                set.iter()
                    .filter(|(kind, _)| *kind != WatchKind::Child)
                    .map(move |(_, p)| (*id, p.clone()))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The number of (path, session) watches, as `mntr`'s zk_watch_count counts them.
    pub fn count(&self) -> usize {
        self.tables
            .values()
            .flat_map(HashMap::values)
            .map(BTreeSet::len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_and_deduplicated_on_delete() {
        let mut w = Watches::default();
        w.add(WatchKind::Data, "/a", 1);
        w.add(WatchKind::Child, "/a", 1);
        w.add(WatchKind::Data, "/a", 2);
        assert_eq!(w.count(), 3);
        assert_eq!(w.fire("/a", EventType::NodeDeleted), vec![1, 2]);
        assert_eq!(w.fire("/a", EventType::NodeDeleted), Vec::<i64>::new());
        w.add(WatchKind::Child, "/p", 3);
        assert!(w.fire("/p", EventType::NodeDataChanged).is_empty());
        assert_eq!(w.fire("/p", EventType::NodeChildrenChanged), vec![3]);
        w.add(WatchKind::Data, "/x", 4);
        w.remove_session(4);
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn persistent_watches_stay_and_recursive_ones_skip_child_events() {
        let mut w = Watches::default();
        w.add(WatchKind::Persistent, "/p", 1);
        w.add(WatchKind::PersistentRecursive, "/p", 2);
        assert_eq!(w.fire("/p", EventType::NodeDataChanged), vec![1, 2]);
        assert_eq!(w.fire("/p", EventType::NodeDataChanged), vec![1, 2]);
        assert_eq!(w.fire("/p", EventType::NodeChildrenChanged), vec![1]);
        assert_eq!(w.fire("/p/c/d", EventType::NodeCreated), vec![2]);
        assert_eq!(w.fire("/pp", EventType::NodeCreated), Vec::<i64>::new());
        assert!(w.contains(WatcherType::Any, "/p", 2));
        assert!(!w.contains(WatcherType::Data, "/p", 2));
        assert!(w.remove_type(WatcherType::PersistentRecursive, "/p", 2));
        assert!(!w.remove_type(WatcherType::PersistentRecursive, "/p", 2));
        w.add(WatchKind::PersistentRecursive, "/", 3);
        assert_eq!(w.fire("/x", EventType::NodeDeleted), vec![3]);
        assert_eq!(path_and_ancestors("/a/b"), vec!["/", "/a", "/a/b"]);
        assert_eq!(path_and_ancestors("/"), vec!["/"]);
    }
}
