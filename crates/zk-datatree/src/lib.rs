//! The replicated state machine's logic: ZooKeeper's data tree as a pure, deterministic
//! function of (tree, command).
//!
//! Owns: the znode model ([`Node`], its stored cversion and the client-visible Stat), the
//! [`TreeStore`] seam with an in-memory implementation, and [`apply`] for the write
//! operations with ZooKeeper's checks in ZooKeeper's order (create/create2/createContainer,
//! delete, setData, multi with check, session create/close with their ephemerals), producing
//! the outcome and the watch triggers.
//! Does not own: storage engines (`zk-storage`), the log (`zk-consensus`), reads, watch
//! registration and delivery, connections (`zk-session`). No clock, no RNG, no I/O: time comes
//! from [`Command::time_ms`], stamped once by the leader.
//!
//! # Layout
//! - `acl`: ACL checks and fixup with the world, auth, digest and ip schemes.
//! - `node`: [`Node`] and the Stat quirks.
//! - `quota`: quota statistics kept current under `/zookeeper/quota`.
//! - `store`: [`TreeStore`], [`MemStore`], the multi journal.
//! - `apply`: [`apply`], [`Command`], [`Outcome`], [`init_system_nodes`].
//! - `codec`: the log encoding of a [`Command`].

mod acl;
mod apply;
mod codec;
mod node;
mod quota;
mod store;

pub use acl::{AuthId, check as check_acl, fixup as fixup_acl, mask_digests};
pub use apply::{
    Applied, CONFIG_NODE, Command, Features, Op, Outcome, Trigger, apply, init_system_nodes,
    reapable, session_id_for,
};
pub use codec::CommandDecodeError;
pub use node::{Node, index_owner, owner_session, ttl_of};
pub use store::{MemStore, Session, TreeStore, child_path, split_parent};
