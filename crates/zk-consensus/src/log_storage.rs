//! openraft's `RaftLogStorage` on `zk_storage::LogStore`.
//!
//! Writes run on tokio's blocking pool, because an fsync may take milliseconds and must not
//! stall a tokio worker. `append` returns (and calls openraft's IO callback) only after the
//! batch is fsynced: the entries are then both readable and durable. openraft awaits `append`
//! and meanwhile batches every proposal that arrives into its next append, so one fsync covers
//! many proposals (group commit).

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, PoisonError};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use zk_storage::{LogStore, StorageError};

use crate::types::{
    Entry, LogId, TypeConfig, Vote, corrupt, decode_entry, decode_log_id, encode_entry,
    encode_log_id, entry_log_id,
};

const META_VOTE: &[u8] = b"vote";
const META_COMMITTED: &[u8] = b"committed";
const META_LAST_PURGED: &[u8] = b"last_purged";

pub(crate) fn io_error(e: StorageError) -> io::Error {
    io::Error::other(e)
}

/// Runs a blocking storage call on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("storage task failed: {e}")))?
        .map_err(io_error)
}

/// The log store as openraft's log storage and log reader (cloned for each reader).
#[derive(Clone)]
pub(crate) struct LogStorage {
    log: Arc<LogStore>,
    /// The committed log id openraft last reported, not yet written: the next append (or
    /// purge) carries it, so that a commit costs no storage call of its own on the write path.
    committed: Arc<Mutex<Option<Vec<u8>>>>,
    /// Counts live handles to the stores, so that shutdown can wait until openraft's tasks
    /// have dropped theirs (RocksDB's directory lock is released only then).
    _alive: Arc<()>,
}

impl LogStorage {
    pub(crate) fn new(log: Arc<LogStore>, alive: Arc<()>) -> Self {
        LogStorage {
            log,
            committed: Arc::default(),
            _alive: alive,
        }
    }

    fn pending_committed(&self) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
        self.committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStorage {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let (start, end) = bounds(&range);
        self.log
            .entries(start..end)
            .map_err(io_error)?
            .into_iter()
            .map(|(index, value)| decode_entry(index, value))
            .collect()
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        match self.log.get_meta(META_VOTE).map_err(io_error)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| corrupt(format!("vote: {e}"))),
        }
    }
}

impl RaftLogStorage<TypeConfig> for LogStorage {
    type LogReader = LogStorage;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id = match self.log.get_meta(META_LAST_PURGED).map_err(io_error)? {
            None => None,
            Some(bytes) => decode_log_id(&bytes)?,
        };
        let last_log_id = match self.log.last_entry().map_err(io_error)? {
            Some((index, value)) => Some(entry_log_id(index, &value)?),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        let bytes = serde_json::to_vec(vote).map_err(io::Error::other)?;
        let log = self.log.clone();
        // fsynced: a vote must be on disk before this node acts on it.
        blocking(move || log.put_meta(META_VOTE, &bytes)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        let bytes = committed
            .map(|c| encode_log_id(&c).to_vec())
            .unwrap_or_default();
        // Kept in memory and written with the next append or purge, never fsynced on its own:
        // a lost committed id only means that recovery re-establishes it through the next
        // commit, see `Consensus::start`.
        *self.pending_committed() = Some(bytes);
        Ok(())
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        let pending = self.pending_committed().clone();
        let bytes = match pending {
            Some(bytes) => Some(bytes),
            None => self.log.get_meta(META_COMMITTED).map_err(io_error)?,
        };
        match bytes {
            None => Ok(None),
            Some(bytes) => decode_log_id(&bytes),
        }
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, encode_entry(&e)?)))
            .collect::<io::Result<Vec<_>>>()?;
        let log = self.log.clone();
        let committed = self.pending_committed().take();
        let written = blocking(move || {
            let meta = committed.as_deref().map(|c| (META_COMMITTED, c));
            log.append_with_meta(&encoded, meta.as_slice())
        });
        match written.await {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let log = self.log.clone();
        blocking(move || log.truncate_after(last_log_id.map(|id| id.index))).await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let log = self.log.clone();
        let committed = self.pending_committed().take();
        blocking(move || {
            let purged = encode_log_id(&log_id);
            let meta: Vec<(&[u8], &[u8])> = [(META_LAST_PURGED, &purged[..])]
                .into_iter()
                .chain(committed.as_deref().map(|c| (META_COMMITTED, c)))
                .collect();
            log.purge_upto(log_id.index, &meta)
        })
        .await
    }
}
