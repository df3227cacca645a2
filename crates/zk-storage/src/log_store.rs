//! The Raft log on its own RocksDB instance.
//!
//! Column family `logs`: key = the entry's index as u64 big-endian (so key order is index
//! order), value = the entry's bytes, opaque here. Column family `meta`: opaque keys and values
//! (the consensus layer keeps its vote, committed and last purged log ids there).
//!
//! Durability: [`LogStore::append`] and [`LogStore::put_meta`] write with `sync = true`, i.e.
//! they return after the WAL is fsynced. Truncation and purge are not synced on their own: the
//! WAL is sequential, so the next synced write makes them durable, and losing one in a crash
//! only brings back entries that the consensus layer handles anyway (uncommitted entries that a
//! leader overwrites again, or already-applied entries that are purged again).

use std::ops::Range;
use std::path::Path;

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, WriteBatch, WriteOptions,
};

use crate::StorageError;
use crate::tuning;

const CF_LOGS: &str = "logs";
const CF_META: &str = "meta";

/// The Raft log: entries by index and a few metadata values, on a RocksDB instance of its own.
pub struct LogStore {
    db: DB,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("path", &self.db.path())
            .finish()
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn decode_index(key: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("log key of {} bytes", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

fn synced() -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    opts
}

impl LogStore {
    /// Opens (creating if needed) the log store in `dir`.
    pub fn open(dir: &Path) -> Result<LogStore, StorageError> {
        std::fs::create_dir_all(dir)?;
        let cfs = [CF_LOGS, CF_META]
            .map(|name| ColumnFamilyDescriptor::new(name, tuning::log_cf_options()));
        let db = DB::open_cf_descriptors(&tuning::log_db_options(), dir, cfs)?;
        Ok(LogStore { db })
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        // The column families are created by `open`; a missing one is a bug, not an I/O error.
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| panic!("log store column family {name} missing"))
    }

    /// Appends (or overwrites) entries in one `WriteBatch` written with fsync: when this
    /// returns, the entries are durable and readable. Openraft hands over every entry that
    /// accumulated while the previous append was syncing, so one fsync covers many proposals
    /// (group commit).
    pub fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), StorageError> {
        self.append_with_meta(entries, &[])
    }

    /// [`LogStore::append`] that also writes the `meta` pairs in the same fsynced batch (for
    /// values that may lag, carried by the next append instead of a write of their own).
    pub fn append_with_meta(
        &self,
        entries: &[(u64, Vec<u8>)],
        meta: &[(&[u8], &[u8])],
    ) -> Result<(), StorageError> {
        if entries.is_empty() && meta.is_empty() {
            return Ok(());
        }
        let logs = self.cf(CF_LOGS);
        let mut batch = WriteBatch::default();
        let cf_meta = self.cf(CF_META);
        for (key, value) in meta {
            batch.put_cf(cf_meta, key, value);
        }
        for (index, bytes) in entries {
            batch.put_cf(logs, index_key(*index), bytes);
        }
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    /// Deletes every entry after `index` (all entries for `None`).
    pub fn truncate_after(&self, index: Option<u64>) -> Result<(), StorageError> {
        let from = match index {
            None => 0,
            Some(u64::MAX) => return Ok(()),
            Some(i) => i + 1,
        };
        let mut batch = WriteBatch::default();
        let logs = self.cf(CF_LOGS);
        batch.delete_range_cf(logs, index_key(from), index_key(u64::MAX));
        // delete_range's end is exclusive: index u64::MAX is never used, but stay exact.
        batch.delete_cf(logs, index_key(u64::MAX));
        self.db.write(batch)?;
        Ok(())
    }

    /// Deletes every entry up to and including `index`, and writes the `meta` pairs (e.g. the
    /// last purged log id) in the same atomic batch, so that the record of the purge and the
    /// purge itself cannot be separated by a crash.
    pub fn purge_upto(&self, index: u64, meta: &[(&[u8], &[u8])]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let cf_meta = self.cf(CF_META);
        for (key, value) in meta {
            batch.put_cf(cf_meta, key, value);
        }
        let logs = self.cf(CF_LOGS);
        batch.delete_range_cf(logs, index_key(0), index_key(index));
        batch.delete_cf(logs, index_key(index));
        self.db.write(batch)?;
        Ok(())
    }

    /// Returns the entries whose index is in `range`, in index order. Missing entries are
    /// skipped, so the caller checks that the result is the contiguous run it expects.
    pub fn entries(&self, range: Range<u64>) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let mut out = Vec::new();
        if range.start >= range.end {
            return Ok(out);
        }
        let start = index_key(range.start);
        let iter = self.db.iterator_cf(
            self.cf(CF_LOGS),
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            let index = decode_index(&key)?;
            if index >= range.end {
                break;
            }
            out.push((index, value.into_vec()));
        }
        Ok(out)
    }

    /// Returns the entry with the highest index.
    pub fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let mut iter = self.db.iterator_cf(self.cf(CF_LOGS), IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item?;
                Ok(Some((decode_index(&key)?, value.into_vec())))
            }
        }
    }

    /// Returns the lowest index present.
    pub fn first_index(&self) -> Result<Option<u64>, StorageError> {
        let mut iter = self.db.iterator_cf(self.cf(CF_LOGS), IteratorMode::Start);
        match iter.next() {
            None => Ok(None),
            Some(item) => Ok(Some(decode_index(&item?.0)?)),
        }
    }

    /// Writes a metadata value with fsync (a vote must be on disk before it is acted on).
    pub fn put_meta(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), key, value);
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    /// Reads a metadata value.
    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get_cf(self.cf(CF_META), key)?)
    }
}
