//! A znode as the tree stores it.

use std::sync::Arc;

use bytes::Bytes;
use zk_protocol::jute::data::{ACL, Stat};
use zk_protocol::{CONTAINER_EPHEMERAL_OWNER, TTL_OWNER_PREFIX};

/// A stored znode. `cversion` is ZooKeeper's *stored* counter: the number of child creates
/// (deletes do not change it); clients see `2 × cversion − num_children` (see [`Node::stat`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// zxid of the create.
    pub czxid: i64,
    /// zxid of the last data change.
    pub mzxid: i64,
    /// Leader time of the create, in ms.
    pub ctime: i64,
    /// Leader time of the last data change, in ms.
    pub mtime: i64,
    /// Data version.
    pub version: i32,
    /// Number of child creates (ZooKeeper's stored cversion).
    pub cversion: i32,
    /// ACL version.
    pub aversion: i32,
    /// Owning session of an ephemeral; the container / TTL markers; 0 otherwise.
    pub ephemeral_owner: i64,
    /// zxid of the last child create or delete.
    pub pzxid: i64,
    /// Number of children.
    pub num_children: i32,
    /// The data; `None` when created with null data (getData then answers null).
    pub data: Option<Bytes>,
    /// The ACL.
    pub acl: Arc<[ACL]>,
}

impl Node {
    /// Returns the Stat a client sees, as `DataNode.copyStat` computes it.
    pub fn stat(&self) -> Stat {
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self
                .cversion
                .wrapping_mul(2)
                .wrapping_sub(self.num_children),
            aversion: self.aversion,
            // DataNode.copyStat: clients see the owner of ephemerals only; containers and TTL
            // nodes report 0 (measured on 3.9.5).
            ephemeral_owner: self.owner_session().unwrap_or(0),
            data_length: self
                .data
                .as_ref()
                .map_or(0, |d| i32::try_from(d.len()).unwrap_or(i32::MAX)),
            num_children: self.num_children,
            pzxid: self.pzxid,
        }
    }

    /// The session owning this node, if it is an ephemeral (not a container or TTL node).
    pub fn owner_session(&self) -> Option<i64> {
        owner_session(self.ephemeral_owner)
    }
}

/// The session an `ephemeralOwner` value names, if any (`EphemeralType.NORMAL`).
pub fn owner_session(ephemeral_owner: i64) -> Option<i64> {
    let special = ephemeral_owner == CONTAINER_EPHEMERAL_OWNER
        || (ephemeral_owner & TTL_OWNER_PREFIX) == TTL_OWNER_PREFIX;
    (ephemeral_owner != 0 && !special).then_some(ephemeral_owner)
}

/// The key under which a node is indexed in the store's owner index: its session for an
/// ephemeral, [`CONTAINER_EPHEMERAL_OWNER`] for every container, [`TTL_OWNER_PREFIX`] for every
/// TTL node (whatever its TTL); `None` for an ordinary node. No session id can collide with the
/// two markers (session ids never have the high byte 0xff, and are never `i64::MIN`).
pub fn index_owner(ephemeral_owner: i64) -> Option<i64> {
    if ephemeral_owner == 0 {
        None
    } else if ephemeral_owner == CONTAINER_EPHEMERAL_OWNER {
        Some(CONTAINER_EPHEMERAL_OWNER)
    } else if (ephemeral_owner & TTL_OWNER_PREFIX) == TTL_OWNER_PREFIX {
        Some(TTL_OWNER_PREFIX)
    } else {
        Some(ephemeral_owner)
    }
}

/// The TTL in ms of a TTL node's `ephemeralOwner`, if it is one.
pub fn ttl_of(ephemeral_owner: i64) -> Option<i64> {
    ((ephemeral_owner & TTL_OWNER_PREFIX) == TTL_OWNER_PREFIX && ephemeral_owner != -1)
        .then_some(ephemeral_owner & zk_protocol::MAX_TTL_MS)
}
