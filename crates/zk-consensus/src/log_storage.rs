//! openraft's `RaftLogStorage` on `zk_storage::LogStore`.
//!
//! Writes run on tokio's blocking pool, because an fsync may take milliseconds and must not
//! stall a tokio worker. `append` returns (and calls openraft's IO callback) only after the
//! batch is fsynced: the entries are then both readable and durable. openraft awaits `append`
//! and meanwhile batches every proposal that arrives into its next append, so one fsync covers
//! many proposals (group commit).
//!
//! The entries last appended are also kept in memory ([`TailCache`]): apply reads every
//! committed entry back, and replication reads what followers miss, almost always from the
//! tail, so those reads cost a clone of an `Arc`'d buffer instead of a RocksDB read and a
//! decode.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

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
    /// The last appended entries, shared by every clone (the readers).
    tail: Arc<Mutex<TailCache>>,
    /// Counts live handles to the stores, so that shutdown can wait until openraft's tasks
    /// have dropped theirs (RocksDB's directory lock is released only then).
    _alive: Arc<()>,
}

impl LogStorage {
    pub(crate) fn new(log: Arc<LogStore>, alive: Arc<()>) -> Self {
        LogStorage {
            log,
            committed: Arc::default(),
            tail: Arc::default(),
            _alive: alive,
        }
    }

    fn pending_committed(&self) -> MutexGuard<'_, Option<Vec<u8>>> {
        locked(&self.committed)
    }

    fn tail(&self) -> MutexGuard<'_, TailCache> {
        locked(&self.tail)
    }
}

/// Maps a poisoned lock to its guard: both locks hold plain values that every holder leaves
/// whole.
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The most entries the tail cache holds.
const TAIL_MAX_ENTRIES: usize = 16 << 10;
/// The most payload bytes the tail cache holds.
const TAIL_MAX_BYTES: usize = 16 << 20;

/// A contiguous run of the last entries written to the log store, never more than it holds:
/// entries go in once their append is written, and out before a truncation or a purge is
/// written (a failed one leaves the store answering); bounded by [`TAIL_MAX_ENTRIES`] and [`TAIL_MAX_BYTES`] (the oldest go first).
#[derive(Default)]
pub(crate) struct TailCache {
    entries: VecDeque<Entry>,
    bytes: usize,
}

fn payload_size(entry: &Entry) -> usize {
    64 + match &entry.payload {
        // The decoded command of an entry proposed here takes about as much again.
        openraft::EntryPayload::Normal(cmd) => {
            cmd.bytes.len() * if cmd.decoded.is_some() { 2 } else { 1 }
        }
        _ => 0,
    }
}

impl TailCache {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.log_id.index)
    }

    /// Records entries just written after the last one held (or, if they do not follow it,
    /// instead of everything held).
    fn appended(&mut self, new: &[Entry]) {
        let Some(first) = new.first() else {
            return;
        };
        let follows = self
            .entries
            .back()
            .is_some_and(|last| last.log_id.index + 1 == first.log_id.index);
        if !follows {
            self.entries.clear();
            self.bytes = 0;
        }
        for entry in new {
            self.bytes += payload_size(entry);
            self.entries.push_back(entry.clone());
        }
        while self.entries.len() > TAIL_MAX_ENTRIES || self.bytes > TAIL_MAX_BYTES {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= payload_size(&old);
        }
    }

    /// Drops the entries after `index` (all for `None`).
    fn truncated_after(&mut self, index: Option<u64>) {
        while let Some(last) = self.entries.back() {
            if index.is_some_and(|i| last.log_id.index <= i) {
                break;
            }
            let last = self.entries.pop_back().expect("checked");
            self.bytes -= payload_size(&last);
        }
    }

    /// Drops the entries up to and including `index`.
    fn purged_upto(&mut self, index: u64) {
        while let Some(first) = self.entries.front() {
            if first.log_id.index > index {
                break;
            }
            let first = self.entries.pop_front().expect("checked");
            self.bytes -= payload_size(&first);
        }
    }

    /// The entries `[start, end)` if the cache holds all of them.
    fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let first = self.first_index()?;
        let last = self.entries.back()?.log_id.index;
        if start < first || end > last + 1 || start >= end {
            return None;
        }
        let from = (start - first) as usize;
        Some(
            self.entries
                .range(from..from + (end - start) as usize)
                .cloned()
                .collect(),
        )
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
        if let Some(entries) = self.tail().get(start, end) {
            return Ok(entries);
        }
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
        let entries: Vec<Entry> = entries.into_iter().collect();
        let encoded = entries
            .iter()
            .map(|e| Ok((e.log_id.index, encode_entry(e)?)))
            .collect::<io::Result<Vec<_>>>()?;
        let log = self.log.clone();
        let committed = self.pending_committed().take();
        let written = blocking(move || {
            let meta = committed.as_deref().map(|c| (META_COMMITTED, c));
            log.append_with_meta(&encoded, meta.as_slice())?;
            Ok(encoded)
        });
        match written.await {
            Ok(encoded) => {
                // On this task, not the blocking pool: the commands the tail lets go of are
                // freed on the thread that allocated them.
                drop(encoded);
                self.tail().appended(&entries);
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
        let index = last_log_id.map(|id| id.index);
        self.tail().truncated_after(index);
        blocking(move || log.truncate_after(index)).await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        self.tail().purged_upto(log_id.index);
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use openraft::EntryPayload;

    use super::*;
    use crate::types::{CommittedLeaderId, LogCommand};

    fn entry(index: u64, len: usize) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1), index),
            payload: EntryPayload::Normal(LogCommand::from_bytes(Bytes::from(vec![
                index as u8;
                len
            ]))),
        }
    }

    fn indexes(entries: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        entries.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn the_tail_serves_only_ranges_it_holds_whole() {
        let mut tail = TailCache::default();
        assert_eq!(indexes(tail.get(1, 2)), None);
        tail.appended(&[entry(5, 1), entry(6, 1)]);
        tail.appended(&[entry(7, 1)]);
        assert_eq!(indexes(tail.get(5, 8)), Some(vec![5, 6, 7]));
        assert_eq!(indexes(tail.get(6, 7)), Some(vec![6]));
        // Partly before or after what it holds, or empty: the store answers.
        assert_eq!(indexes(tail.get(4, 6)), None);
        assert_eq!(indexes(tail.get(6, 9)), None);
        assert_eq!(indexes(tail.get(6, u64::MAX)), None);
        assert_eq!(indexes(tail.get(6, 6)), None);
        // Entries that do not follow the last one replace the run.
        tail.appended(&[entry(10, 1)]);
        assert_eq!(indexes(tail.get(5, 6)), None);
        assert_eq!(indexes(tail.get(10, 11)), Some(vec![10]));
    }

    #[test]
    fn the_tail_follows_truncation_and_purge() {
        let mut tail = TailCache::default();
        tail.appended(&(1..=6).map(|i| entry(i, 10)).collect::<Vec<_>>());
        tail.truncated_after(Some(4));
        assert_eq!(indexes(tail.get(4, 6)), None);
        assert_eq!(indexes(tail.get(1, 5)), Some(vec![1, 2, 3, 4]));
        // A new leader's entries overwrite from 5 on.
        tail.appended(&[entry(5, 10)]);
        assert_eq!(indexes(tail.get(3, 6)), Some(vec![3, 4, 5]));
        tail.purged_upto(3);
        assert_eq!(indexes(tail.get(3, 6)), None);
        assert_eq!(indexes(tail.get(4, 6)), Some(vec![4, 5]));
        assert_eq!(tail.bytes, 2 * 74);
        tail.truncated_after(None);
        assert_eq!(tail.entries.len(), 0);
        assert_eq!(tail.bytes, 0);
    }

    #[test]
    fn the_tail_is_bounded() {
        let mut tail = TailCache::default();
        let count = TAIL_MAX_ENTRIES as u64 + 10;
        for i in 1..=count {
            tail.appended(&[entry(i, 0)]);
        }
        assert_eq!(tail.entries.len(), TAIL_MAX_ENTRIES);
        assert_eq!(tail.first_index(), Some(11));
        let big = TAIL_MAX_BYTES / 4;
        tail.appended(
            &(count + 1..=count + 5)
                .map(|i| entry(i, big))
                .collect::<Vec<_>>(),
        );
        assert!(tail.bytes <= TAIL_MAX_BYTES);
        assert_eq!(tail.entries.len(), 3);
        assert_eq!(
            indexes(tail.get(count + 3, count + 6)),
            Some(vec![count + 3, count + 4, count + 5])
        );
    }
}
