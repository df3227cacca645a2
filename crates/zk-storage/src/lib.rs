//! ferrokeeper's storage: the Raft log store (segment files of its own) and the state-machine
//! store (RocksDB), with plain APIs of our own.
//!
//! Owns: the log's files, the RocksDB instance and everything about their layout and tuning —
//! [`LogStore`] (log entries as opaque bytes by index, plus opaque metadata such as the vote,
//! durable with fsync) and [`StateStore`] (the data tree in column families `nodes`,
//! `ephemerals`, `sessions`, `meta`; apply batches through an overlay into one atomic
//! `WriteBatch`; the apply gate that makes "read + register a watch" atomic with respect to
//! apply; checkpoints for snapshots).
//! Does not own: what a command does (`zk-datatree`'s `apply`, run inside
//! [`StateStore::apply_batch`]), the encoding of log entries, votes or log ids (opaque bytes
//! here; `zk-consensus` defines them), when to append, commit, snapshot or purge (openraft, via
//! `zk-consensus`). This is the only crate that links `rocksdb`, and it names no openraft type.
//!
//! # Layout
//! - `log_store`: [`LogStore`], its file formats and recovery.
//! - `state_store`: [`StateStore`], the apply overlay and the apply gate.
//! - `codec`: keys and node values of the state store.
//! - `tuning`: the state store's RocksDB options.
//!
//! # Failure policy
//! Every method returns [`StorageError`] for I/O or corruption, except inside
//! [`StateStore::apply_batch`]'s closure: the overlay implements `zk_datatree::TreeStore`, whose
//! methods cannot fail, so a read error there panics. A disk that fails in the middle of apply
//! must stop the server rather than let this replica compute a different tree than the others.

mod codec;
mod log_store;
mod state_store;
mod tuning;

pub use log_store::LogStore;
pub use state_store::{META_PREFIX_RESERVED, StateStore};

/// Why a storage operation failed. Storage errors are not ZooKeeper errors: the consensus layer
/// treats them as fatal for this replica.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB reported an error (I/O, corruption it detected, a locked directory, ...).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored value does not decode: the store was corrupted or written by something else.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// A file-system operation around RocksDB failed (creating directories, checkpoints).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The store's directory is locked by another open instance (this process or another).
    #[error("store directory {0} is locked by another open instance")]
    Busy(String),
    /// The caller broke a precondition (e.g. a checkpoint target that already exists).
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl StorageError {
    /// Returns true when the error says the directory is locked by another open instance
    /// (this process or another one), so that a caller reopening after a shutdown can retry.
    pub fn is_lock_busy(&self) -> bool {
        match self {
            StorageError::Busy(_) => true,
            StorageError::Rocks(e) => {
                let msg = e.to_string();
                msg.contains("While lock file") || msg.contains("lock hold by current process")
            }
            _ => false,
        }
    }
}
