//! The storage seam: what apply needs from a store, and an in-memory store.
//!
//! A store keeps nodes by full path, the children of each node, the ephemerals of each
//! session and the session table. `zk-storage` implements the same trait on RocksDB.

use std::collections::{BTreeMap, BTreeSet};

use crate::node::{Node, index_owner};

/// A session as the replicated state knows it (liveness is not replicated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// Negotiated timeout in ms.
    pub timeout_ms: i32,
}

/// What apply reads and writes. Implementations keep the children and ephemeral indexes
/// consistent with `put_node` / `remove_node`.
pub trait TreeStore {
    /// Returns the node at `path`.
    fn node(&self, path: &str) -> Option<Node>;
    /// Inserts or replaces the node at `path`.
    fn put_node(&mut self, path: &str, node: Node);
    /// Removes the node at `path` (which must have no children).
    fn remove_node(&mut self, path: &str);
    /// Returns the names of the children of `path`, sorted.
    fn children(&self, path: &str) -> Vec<String>;
    /// Returns the paths indexed under an owner, sorted: a session's ephemerals, or every
    /// container / TTL node for the markers of [`crate::index_owner`].
    fn ephemerals(&self, session_id: i64) -> Vec<String>;
    /// Returns the session `session_id`.
    fn session(&self, session_id: i64) -> Option<Session>;
    /// Inserts or replaces a session.
    fn put_session(&mut self, session_id: i64, session: Session);
    /// Removes a session.
    fn remove_session(&mut self, session_id: i64);
}

/// Joins a parent path and a child's name.
pub fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Splits a path into its parent and its last component; the root's parent is `None`.
pub fn split_parent(path: &str) -> Option<(&str, &str)> {
    let slash = path.rfind('/')?;
    if path == "/" {
        return None;
    }
    let parent = if slash == 0 { "/" } else { &path[..slash] };
    Some((parent, &path[slash + 1..]))
}

/// An in-memory [`TreeStore`], used by tests and as the model of the RocksDB store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemStore {
    nodes: BTreeMap<String, Node>,
    children: BTreeMap<String, BTreeSet<String>>,
    ephemerals: BTreeMap<i64, BTreeSet<String>>,
    sessions: BTreeMap<i64, Session>,
}

impl MemStore {
    /// Returns every node, by path.
    pub fn nodes(&self) -> &BTreeMap<String, Node> {
        &self.nodes
    }

    /// Returns every session.
    pub fn sessions(&self) -> &BTreeMap<i64, Session> {
        &self.sessions
    }
}

impl TreeStore for MemStore {
    fn node(&self, path: &str) -> Option<Node> {
        self.nodes.get(path).cloned()
    }

    fn put_node(&mut self, path: &str, node: Node) {
        if let Some(old) = self
            .nodes
            .get(path)
            .and_then(|n| index_owner(n.ephemeral_owner))
            && let Some(set) = self.ephemerals.get_mut(&old)
        {
            set.remove(path);
        }
        if let Some(owner) = index_owner(node.ephemeral_owner) {
            self.ephemerals
                .entry(owner)
                .or_default()
                .insert(path.to_string());
        }
        if self.nodes.insert(path.to_string(), node).is_none()
            && let Some((parent, name)) = split_parent(path)
        {
            self.children
                .entry(parent.to_string())
                .or_default()
                .insert(name.to_string());
        }
    }

    fn remove_node(&mut self, path: &str) {
        let Some(old) = self.nodes.remove(path) else {
            return;
        };
        if let Some(owner) = index_owner(old.ephemeral_owner)
            && let Some(set) = self.ephemerals.get_mut(&owner)
        {
            set.remove(path);
            if set.is_empty() {
                self.ephemerals.remove(&owner);
            }
        }
        if let Some((parent, name)) = split_parent(path)
            && let Some(set) = self.children.get_mut(parent)
        {
            set.remove(name);
            if set.is_empty() {
                self.children.remove(parent);
            }
        }
    }

    fn children(&self, path: &str) -> Vec<String> {
        self.children
            .get(path)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn ephemerals(&self, session_id: i64) -> Vec<String> {
        self.ephemerals
            .get(&session_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn session(&self, session_id: i64) -> Option<Session> {
        self.sessions.get(&session_id).copied()
    }

    fn put_session(&mut self, session_id: i64, session: Session) {
        self.sessions.insert(session_id, session);
    }

    fn remove_session(&mut self, session_id: i64) {
        self.sessions.remove(&session_id);
    }
}

/// Records the previous state of everything written through it, so that a failed multi can
/// be rolled back.
pub(crate) struct Journal<'a, S: TreeStore + ?Sized> {
    store: &'a mut S,
    undo: Vec<(String, Option<Node>)>,
}

impl<'a, S: TreeStore + ?Sized> Journal<'a, S> {
    pub(crate) fn new(store: &'a mut S) -> Self {
        Self {
            store,
            undo: Vec::new(),
        }
    }

    /// Restores every node written through the journal, newest first.
    pub(crate) fn rollback(self) {
        for (path, old) in self.undo.into_iter().rev() {
            match old {
                Some(node) => self.store.put_node(&path, node),
                None => self.store.remove_node(&path),
            }
        }
    }
}

impl<S: TreeStore + ?Sized> TreeStore for Journal<'_, S> {
    fn node(&self, path: &str) -> Option<Node> {
        self.store.node(path)
    }
    fn put_node(&mut self, path: &str, node: Node) {
        self.undo.push((path.to_string(), self.store.node(path)));
        self.store.put_node(path, node);
    }
    fn remove_node(&mut self, path: &str) {
        self.undo.push((path.to_string(), self.store.node(path)));
        self.store.remove_node(path);
    }
    fn children(&self, path: &str) -> Vec<String> {
        self.store.children(path)
    }
    fn ephemerals(&self, session_id: i64) -> Vec<String> {
        self.store.ephemerals(session_id)
    }
    fn session(&self, session_id: i64) -> Option<Session> {
        self.store.session(session_id)
    }
    fn put_session(&mut self, session_id: i64, session: Session) {
        self.store.put_session(session_id, session);
    }
    fn remove_session(&mut self, session_id: i64) {
        self.store.remove_session(session_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents() {
        assert_eq!(split_parent("/"), None);
        assert_eq!(split_parent("/a"), Some(("/", "a")));
        assert_eq!(split_parent("/a/b"), Some(("/a", "b")));
        assert_eq!(split_parent("/a//b"), Some(("/a/", "b")));
        assert_eq!(split_parent("rel"), None);
    }
}
