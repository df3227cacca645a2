//! The watch registry of this server: one-shot data/exist and child watches, by session.

use std::collections::{BTreeSet, HashMap, HashSet};

use zk_protocol::watch::EventType;

/// Watches registered by the sessions connected to this server (never replicated).
#[derive(Debug, Default)]
pub struct Watches {
    data: HashMap<String, BTreeSet<i64>>,
    child: HashMap<String, BTreeSet<i64>>,
    by_session: HashMap<i64, (HashSet<String>, HashSet<String>)>,
}

/// Which table a watch lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchKind {
    /// Data and exist watches (getData, exists).
    Data,
    /// Child watches (getChildren).
    Child,
}

impl Watches {
    /// Registers a watch of `session_id` on `path`.
    pub fn add(&mut self, kind: WatchKind, path: &str, session_id: i64) {
        let (table, mine) = match kind {
            WatchKind::Data => (&mut self.data, 0),
            WatchKind::Child => (&mut self.child, 1),
        };
        table
            .entry(path.to_string())
            .or_default()
            .insert(session_id);
        let entry = self.by_session.entry(session_id).or_default();
        if mine == 0 {
            entry.0.insert(path.to_string());
        } else {
            entry.1.insert(path.to_string());
        }
    }

    /// Fires the watches an event on `path` triggers, as `DataTree` does: created and
    /// data-changed fire data watches, children-changed fire child watches, deleted fires both
    /// (a session watching both gets one event). Returns the sessions to notify, sorted.
    pub fn fire(&mut self, path: &str, event: EventType) -> Vec<i64> {
        let mut sessions = BTreeSet::new();
        if matches!(
            event,
            EventType::NodeCreated | EventType::NodeDataChanged | EventType::NodeDeleted
        ) && let Some(s) = self.data.remove(path)
        {
            for id in &s {
                if let Some(e) = self.by_session.get_mut(id) {
                    e.0.remove(path);
                }
            }
            sessions.extend(s);
        }
        if matches!(
            event,
            EventType::NodeChildrenChanged | EventType::NodeDeleted
        ) && let Some(s) = self.child.remove(path)
        {
            for id in &s {
                if let Some(e) = self.by_session.get_mut(id) {
                    e.1.remove(path);
                }
            }
            sessions.extend(s);
        }
        sessions.into_iter().collect()
    }

    /// Drops every watch of a session.
    pub fn remove_session(&mut self, session_id: i64) {
        let Some((data, child)) = self.by_session.remove(&session_id) else {
            return;
        };
        for (paths, table) in [(data, &mut self.data), (child, &mut self.child)] {
            for p in paths {
                if let Some(set) = table.get_mut(&p) {
                    set.remove(&session_id);
                    if set.is_empty() {
                        table.remove(&p);
                    }
                }
            }
        }
    }

    /// The number of (path, session) watches, as `mntr`'s zk_watch_count counts them.
    pub fn count(&self) -> usize {
        self.data.values().map(BTreeSet::len).sum::<usize>()
            + self.child.values().map(BTreeSet::len).sum::<usize>()
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
}
