//! The Raft log in segment files of its own (no RocksDB: an entry is written once, fsynced, read
//! back by index, and dropped a segment at a time; a key-value store's memtable, flushes and
//! compactions were CPU on the write path that bought nothing here).
//!
//! # Files (in the store's directory)
//! - `LOCK`: held with an exclusive file lock while the store is open.
//! - `<number>.seg` (20 digits): segments, written in number order; the highest is the one
//!   being appended to. Each is preallocated with zeros ([`SEGMENT_BYTES`]), so that an
//!   append overwrites blocks in place and its `fdatasync` writes only data, not a new file
//!   size (as ZooKeeper preallocates its transaction logs).
//! - `spare-<number>.seg`: purged segments kept for reuse instead of a new zero-filled file.
//! - `meta`: the metadata map, the purge floor (lowest index kept) and the sequence number it includes, replaced
//!   atomically (written to `meta.tmp`, fsynced, renamed).
//!
//! # Records
//! `len: u32 | crc: u32 | seq: u64 | kind: u8 | index: u64 | payload[len]`, little-endian. `crc`
//! is CRC-32 of the segment's number followed by everything after the crc field, so that what
//! a reused segment held before does not read as a record of its new number. `seq` grows by one
//! per record over the store's life. Kind 1 is a log entry (payload = the entry's bytes), kind
//! 2 a metadata pair written with an append (payload = key length u32, key, value), which
//! overrides the `meta` file when its seq is above the one the file includes.
//!
//! A segment ends at its first record that does not check out (zeros, a torn write, or older
//! data of a reused file). On open, the rest of the last segment is zeroed, so that nothing
//! after a torn write can be read as a record later.
//!
//! # Durability
//! [`LogStore::append`], [`LogStore::put_meta`] and [`LogStore::purge_upto`] return after an
//! fsync. [`LogStore::truncate_after`] is synced too (it is rare: a follower's conflict).

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::StorageError;

/// The size a segment is preallocated to; an append that does not fit starts the next one (a
/// single batch larger than this makes its segment longer).
const SEGMENT_BYTES: u64 = 16 << 20;
/// Purged segments kept for reuse.
const MAX_SPARES: usize = 2;
/// `len`, `crc`, `seq`, `kind`, `index`.
const HEADER: usize = 4 + 4 + 8 + 1 + 8;
/// The largest payload a record may claim (a sanity bound for reading a damaged file; entries
/// are bounded far below by the request size limit).
const MAX_PAYLOAD: u32 = 1 << 30;
const KIND_ENTRY: u8 = 1;
const KIND_META: u8 = 2;
const META_FILE: &str = "meta";
const META_TMP: &str = "meta.tmp";
const META_MAGIC: &[u8; 8] = b"FKLOGMT1";
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// The Raft log: entries by index and a few metadata values, durable with fsync.
pub struct LogStore {
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// Holds the directory's lock until the store is dropped.
    _lock: File,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("dir", &self.dir).finish()
    }
}

struct Segment {
    file: File,
    /// Where its valid records end.
    end: u64,
}

/// Where an entry's record lies.
#[derive(Clone, Copy)]
struct Loc {
    segment: u64,
    /// The record's first byte (its payload follows the header).
    offset: u64,
    len: u32,
}

struct Inner {
    dir: PathBuf,
    /// [`SEGMENT_BYTES`] but in tests.
    segment_bytes: u64,
    segments: BTreeMap<u64, Segment>,
    /// Numbers of the spare files, oldest first.
    spares: Vec<u64>,
    /// The next number for a segment: above every number a file here ever had.
    next_number: u64,
    /// The index of `locs[0]` (or of the next entry, when `locs` is empty).
    first: u64,
    locs: VecDeque<Loc>,
    /// The last sequence number written.
    seq: u64,
    /// The lowest index not purged (0: nothing purged yet).
    floor: u64,
    meta: BTreeMap<Vec<u8>, Vec<u8>>,
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.seg"))
}

fn spare_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("spare-{number:020}.seg"))
}

fn corrupt(what: impl Into<String>) -> StorageError {
    StorageError::Corrupt(what.into())
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// The CRC of a record of segment `segment`: the number, then `parts` (everything after the
/// crc field, in order).
fn record_crc(segment: u64, parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&segment.to_le_bytes());
    for part in parts {
        h.update(part);
    }
    h.finalize()
}

/// Appends one record to `buf`; returns its offset in `buf`.
fn put_record(
    buf: &mut Vec<u8>,
    segment: u64,
    seq: u64,
    kind: u8,
    index: u64,
    payload: &[&[u8]],
) -> usize {
    let start = buf.len();
    let len: usize = payload.iter().map(|p| p.len()).sum();
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(&index.to_le_bytes());
    for p in payload {
        buf.extend_from_slice(p);
    }
    let crc = record_crc(segment, &[&buf[start + 8..]]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    start
}

fn split_meta(payload: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let klen = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let key = payload.get(4..4 + klen)?;
    Some((key.to_vec(), payload[4 + klen..].to_vec()))
}

/// Writes zeros over `range` of `file`.
fn zero(file: &File, range: Range<u64>) -> Result<(), StorageError> {
    let mut at = range.start;
    while at < range.end {
        let n = (range.end - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// A record read back while scanning a segment.
struct Scanned {
    seq: u64,
    kind: u8,
    index: u64,
    payload: Vec<u8>,
}

/// Reads the valid records of segment `number` in order, calling `each(offset, record)`;
/// returns where they end.
fn scan(
    file: &File,
    number: u64,
    min_seq: u64,
    mut each: impl FnMut(u64, Scanned) -> Result<(), StorageError>,
) -> Result<u64, StorageError> {
    let size = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    let mut last_seq = min_seq;
    let mut header = [0u8; HEADER];
    loop {
        if offset + HEADER as u64 > size || reader.read_exact(&mut header).is_err() {
            return Ok(offset);
        }
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let kind = header[16];
        let index = u64::from_le_bytes(header[17..25].try_into().expect("8 bytes"));
        if len > MAX_PAYLOAD
            || offset + (HEADER as u64) + u64::from(len) > size
            || seq <= last_seq
            || !(kind == KIND_ENTRY || kind == KIND_META)
        {
            return Ok(offset);
        }
        let mut payload = vec![0u8; len as usize];
        if reader.read_exact(&mut payload).is_err() {
            return Ok(offset);
        }
        if record_crc(number, &[&header[8..], &payload]) != crc {
            return Ok(offset);
        }
        each(
            offset,
            Scanned {
                seq,
                kind,
                index,
                payload,
            },
        )?;
        last_seq = seq;
        offset += HEADER as u64 + u64::from(len);
    }
}

/// The `meta` file's content.
#[derive(Default)]
struct MetaFile {
    seq: u64,
    floor: u64,
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

fn read_meta_file(path: &Path) -> Result<MetaFile, StorageError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(MetaFile::default()),
        Err(e) => return Err(e.into()),
    };
    let bad = || corrupt(format!("{}: not a log meta file", path.display()));
    if bytes.len() < 8 + 8 + 8 + 4 + 4 || &bytes[..8] != META_MAGIC {
        return Err(bad());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(bad());
    }
    let mut at = 8;
    let mut take = |n: usize| -> Result<&[u8], StorageError> {
        let s = body.get(at..at + n).ok_or_else(bad)?;
        at += n;
        Ok(s)
    };
    let u64_of = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
    let u32_of = |s: &[u8]| u32::from_le_bytes(s.try_into().expect("4 bytes")) as usize;
    let seq = u64_of(take(8)?);
    let floor = u64_of(take(8)?);
    let count = u32_of(take(4)?);
    let mut map = BTreeMap::new();
    for _ in 0..count {
        let klen = u32_of(take(4)?);
        let key = take(klen)?.to_vec();
        let vlen = u32_of(take(4)?);
        let value = take(vlen)?.to_vec();
        map.insert(key, value);
    }
    Ok(MetaFile { seq, floor, map })
}

impl Inner {
    /// Replaces the `meta` file with the current map, purge point and sequence number.
    fn write_meta_file(&self) -> Result<(), StorageError> {
        let mut body = Vec::with_capacity(64);
        body.extend_from_slice(META_MAGIC);
        body.extend_from_slice(&self.seq.to_le_bytes());
        body.extend_from_slice(&self.floor.to_le_bytes());
        body.extend_from_slice(&(self.meta.len() as u32).to_le_bytes());
        for (k, v) in &self.meta {
            body.extend_from_slice(&(k.len() as u32).to_le_bytes());
            body.extend_from_slice(k);
            body.extend_from_slice(&(v.len() as u32).to_le_bytes());
            body.extend_from_slice(v);
        }
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        let tmp = self.dir.join(META_TMP);
        let mut f = File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_data()?;
        std::fs::rename(&tmp, self.dir.join(META_FILE))?;
        sync_dir(&self.dir)
    }

    fn last_index(&self) -> Option<u64> {
        (!self.locs.is_empty()).then(|| self.first + self.locs.len() as u64 - 1)
    }

    fn active(&self) -> (u64, &Segment) {
        let (n, s) = self
            .segments
            .last_key_value()
            .expect("a store has a segment");
        (*n, s)
    }

    /// Starts a new segment (a spare renamed, or a new zero-filled file) and returns its number.
    fn new_segment(&mut self) -> Result<u64, StorageError> {
        let number = self.next_number;
        let path = segment_path(&self.dir, number);
        let file = if self.spares.is_empty() {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            zero(&file, 0..self.segment_bytes)?;
            file.sync_all()?;
            file
        } else {
            let spare = self.spares.remove(0);
            std::fs::rename(spare_path(&self.dir, spare), &path)?;
            OpenOptions::new().read(true).write(true).open(&path)?
        };
        sync_dir(&self.dir)?;
        self.next_number += 1;
        self.segments.insert(number, Segment { file, end: 0 });
        Ok(number)
    }

    /// Removes segment `number` (kept as a spare while there are fewer than [`MAX_SPARES`]);
    /// the caller syncs the directory.
    fn drop_segment(&mut self, number: u64) -> Result<(), StorageError> {
        let Some(segment) = self.segments.remove(&number) else {
            return Ok(());
        };
        drop(segment);
        let path = segment_path(&self.dir, number);
        if self.spares.len() < MAX_SPARES
            && std::fs::metadata(&path).is_ok_and(|m| m.len() == self.segment_bytes)
        {
            std::fs::rename(&path, spare_path(&self.dir, number))?;
            self.spares.push(number);
        } else {
            std::fs::remove_file(&path)?;
        }
        Ok(())
    }

    fn append(
        &mut self,
        entries: &[(u64, Vec<u8>)],
        meta: &[(&[u8], &[u8])],
    ) -> Result<(), StorageError> {
        if let Some((first, _)) = entries.first() {
            if entries.windows(2).any(|w| w[0].0 + 1 != w[1].0) {
                return Err(StorageError::Invalid(
                    "appended entries not contiguous".into(),
                ));
            }
            match self.last_index() {
                Some(last) if *first <= last => self.truncate_after(first.checked_sub(1))?,
                Some(last) if *first > last + 1 => {
                    return Err(StorageError::Invalid(format!(
                        "append at {first} after the last entry {last}"
                    )));
                }
                _ => {}
            }
        }
        let bytes: u64 = entries
            .iter()
            .map(|(_, e)| (HEADER + e.len()) as u64)
            .chain(
                meta.iter()
                    .map(|(k, v)| (HEADER + 4 + k.len() + v.len()) as u64),
            )
            .sum();
        let (mut number, active) = self.active();
        if active.end > 0 && active.end + bytes > self.segment_bytes {
            number = self.new_segment()?;
        }
        let mut buf = Vec::with_capacity(bytes as usize);
        let mut seq = self.seq;
        for (k, v) in meta {
            seq += 1;
            let klen = (k.len() as u32).to_le_bytes();
            put_record(&mut buf, number, seq, KIND_META, 0, &[&klen, k, v]);
        }
        let mut locs = Vec::with_capacity(entries.len());
        for (index, e) in entries {
            seq += 1;
            let at = put_record(&mut buf, number, seq, KIND_ENTRY, *index, &[e]);
            locs.push((at as u64, e.len() as u32));
        }
        let segment = self.segments.get_mut(&number).expect("active segment");
        segment.file.write_all_at(&buf, segment.end)?;
        segment.file.sync_data()?;
        let base = segment.end;
        segment.end += buf.len() as u64;
        self.seq = seq;
        for (k, v) in meta {
            self.meta.insert(k.to_vec(), v.to_vec());
        }
        if let Some((first, _)) = entries.first()
            && self.locs.is_empty()
        {
            self.first = *first;
        }
        self.locs.extend(locs.into_iter().map(|(at, len)| Loc {
            segment: number,
            offset: base + at,
            len,
        }));
        Ok(())
    }

    fn truncate_after(&mut self, index: Option<u64>) -> Result<(), StorageError> {
        let from = match index {
            None => 0,
            Some(u64::MAX) => return Ok(()),
            Some(i) => i + 1,
        };
        let Some(last) = self.last_index() else {
            return Ok(());
        };
        if from > last {
            return Ok(());
        }
        let keep = from.saturating_sub(self.first) as usize;
        let cut = self.locs[keep];
        // Metadata records after the cut are about to go: the meta file takes them first.
        self.write_meta_file()?;
        let later: Vec<u64> = self
            .segments
            .range(cut.segment + 1..)
            .map(|(n, _)| *n)
            .collect();
        for n in later.into_iter().rev() {
            self.drop_segment(n)?;
        }
        sync_dir(&self.dir)?;
        let segment = self
            .segments
            .get_mut(&cut.segment)
            .expect("segment of a live entry");
        zero(&segment.file, cut.offset..segment.end)?;
        segment.file.sync_data()?;
        segment.end = cut.offset;
        self.locs.truncate(keep);
        Ok(())
    }

    fn purge_upto(&mut self, index: u64, meta: &[(&[u8], &[u8])]) -> Result<(), StorageError> {
        for (k, v) in meta {
            self.meta.insert(k.to_vec(), v.to_vec());
        }
        self.floor = self.floor.max(index.saturating_add(1));
        while !self.locs.is_empty() && self.first < self.floor {
            self.locs.pop_front();
            self.first += 1;
        }
        if self.locs.is_empty() {
            self.first = self.first.max(self.floor);
        }
        self.write_meta_file()?;
        let (active, _) = self.active();
        let oldest_live = self.locs.front().map_or(active, |l| l.segment);
        let dead: Vec<u64> = self
            .segments
            .range(..oldest_live)
            .map(|(n, _)| *n)
            .collect();
        if !dead.is_empty() {
            for n in dead {
                self.drop_segment(n)?;
            }
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn read(&self, loc: Loc) -> Result<Vec<u8>, StorageError> {
        let segment = self
            .segments
            .get(&loc.segment)
            .ok_or_else(|| corrupt(format!("log segment {} missing", loc.segment)))?;
        let mut out = vec![0u8; loc.len as usize];
        segment
            .file
            .read_exact_at(&mut out, loc.offset + HEADER as u64)?;
        Ok(out)
    }
}

impl LogStore {
    /// Opens (creating if needed) the log store in `dir`.
    pub fn open(dir: &Path) -> Result<LogStore, StorageError> {
        Self::open_with_segment_bytes(dir, SEGMENT_BYTES)
    }

    /// [`LogStore::open`] with segments of `segment_bytes` instead of 16 MiB (tests use small
    /// ones to cross segment boundaries often).
    pub fn open_with_segment_bytes(
        dir: &Path,
        segment_bytes: u64,
    ) -> Result<LogStore, StorageError> {
        std::fs::create_dir_all(dir)?;
        if dir.join("CURRENT").exists() {
            return Err(StorageError::Invalid(format!(
                "{} holds a Raft log in RocksDB's format (ferrokeeper before its own log files); \
                 start with an empty data directory",
                dir.display()
            )));
        }
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("LOCK"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StorageError::Busy(dir.display().to_string()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        let _ = std::fs::remove_file(dir.join(META_TMP));
        let MetaFile {
            seq: meta_seq,
            floor,
            map,
        } = read_meta_file(&dir.join(META_FILE))?;
        let mut numbers = Vec::new();
        let mut spares = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(".seg") else {
                continue;
            };
            let (list, digits) = match stem.strip_prefix("spare-") {
                Some(d) => (&mut spares, d),
                None => (&mut numbers, stem),
            };
            if let Ok(n) = digits.parse::<u64>() {
                list.push(n);
            }
        }
        numbers.sort_unstable();
        spares.sort_unstable();
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            segment_bytes: segment_bytes.max(HEADER as u64),
            segments: BTreeMap::new(),
            next_number: numbers.iter().chain(&spares).max().map_or(1, |n| n + 1),
            spares,
            first: floor,
            locs: VecDeque::new(),
            seq: meta_seq,
            floor,
            meta: map,
        };
        let mut last_seq = 0u64;
        for number in numbers {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(segment_path(dir, number))?;
            let end = scan(&file, number, last_seq, |offset, rec| {
                last_seq = rec.seq;
                match rec.kind {
                    KIND_META if rec.seq > meta_seq => {
                        let (k, v) = split_meta(&rec.payload)
                            .ok_or_else(|| corrupt("log meta record too short"))?;
                        inner.meta.insert(k, v);
                    }
                    KIND_ENTRY if rec.index >= floor => {
                        match inner.last_index() {
                            None => inner.first = rec.index,
                            Some(last) if rec.index == last + 1 => {}
                            Some(last) => {
                                return Err(corrupt(format!(
                                    "log entry {} after {last} in segment {number}",
                                    rec.index
                                )));
                            }
                        }
                        inner.locs.push_back(Loc {
                            segment: number,
                            offset,
                            len: rec.payload.len() as u32,
                        });
                    }
                    _ => {}
                }
                Ok(())
            })?;
            inner.segments.insert(number, Segment { file, end });
        }
        inner.seq = inner.seq.max(last_seq);
        match inner.segments.last_key_value() {
            None => {
                inner.new_segment()?;
            }
            Some((_, active)) => {
                // Whatever follows the last record (a torn write, older data) becomes zeros.
                let size = active.file.metadata()?.len();
                let mut at = active.end;
                let mut dirty = false;
                let mut chunk = vec![0u8; ZEROS.len()];
                while at < size {
                    let n = (size - at).min(chunk.len() as u64) as usize;
                    active.file.read_exact_at(&mut chunk[..n], at)?;
                    if chunk[..n].iter().any(|b| *b != 0) {
                        active.file.write_all_at(&ZEROS[..n], at)?;
                        dirty = true;
                    }
                    at += n as u64;
                }
                if dirty {
                    active.file.sync_data()?;
                }
            }
        }
        Ok(LogStore {
            dir: dir.to_path_buf(),
            inner: Mutex::new(inner),
            _lock: lock,
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A failed append or put_meta leaves `Inner` as it was (its state changes follow the
        // I/O); a failed truncation or purge may leave it part way, which is safe only because
        // the consensus layer treats every storage error as fatal for this replica.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends entries (overwriting any at or after the first one's index) with one write and
    /// one fsync: when this returns, the entries are durable and readable. Openraft hands over
    /// every entry that accumulated while the previous append was syncing, so one fsync covers
    /// many proposals (group commit).
    pub fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), StorageError> {
        self.append_with_meta(entries, &[])
    }

    /// [`LogStore::append`] that also writes the `meta` pairs in the same fsynced write (for
    /// values that may lag, carried by the next append instead of a write of their own).
    pub fn append_with_meta(
        &self,
        entries: &[(u64, Vec<u8>)],
        meta: &[(&[u8], &[u8])],
    ) -> Result<(), StorageError> {
        if entries.is_empty() && meta.is_empty() {
            return Ok(());
        }
        self.inner().append(entries, meta)
    }

    /// Deletes every entry after `index` (all entries for `None`).
    pub fn truncate_after(&self, index: Option<u64>) -> Result<(), StorageError> {
        self.inner().truncate_after(index)
    }

    /// Deletes every entry up to and including `index`, and writes the `meta` pairs (e.g. the
    /// last purged log id) in the same atomic file replacement, so that the record of the purge
    /// and the purge itself cannot be separated by a crash.
    pub fn purge_upto(&self, index: u64, meta: &[(&[u8], &[u8])]) -> Result<(), StorageError> {
        self.inner().purge_upto(index, meta)
    }

    /// Returns the entries whose index is in `range`, in index order (those that exist).
    pub fn entries(&self, range: Range<u64>) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let inner = self.inner();
        let Some(last) = inner.last_index() else {
            return Ok(Vec::new());
        };
        let start = range.start.max(inner.first);
        let end = range.end.min(last + 1);
        (start..end)
            .map(|i| Ok((i, inner.read(inner.locs[(i - inner.first) as usize])?)))
            .collect()
    }

    /// Returns the entry with the highest index.
    pub fn last_entry(&self) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let inner = self.inner();
        match (inner.last_index(), inner.locs.back()) {
            (Some(last), Some(loc)) => Ok(Some((last, inner.read(*loc)?))),
            _ => Ok(None),
        }
    }

    /// Returns the lowest index present.
    pub fn first_index(&self) -> Result<Option<u64>, StorageError> {
        let inner = self.inner();
        Ok((!inner.locs.is_empty()).then_some(inner.first))
    }

    /// Writes a metadata value with fsync (a vote must be on disk before it is acted on).
    pub fn put_meta(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        let mut inner = self.inner();
        let old = inner.meta.insert(key.to_vec(), value.to_vec());
        if let Err(e) = inner.write_meta_file() {
            match old {
                Some(v) => inner.meta.insert(key.to_vec(), v),
                None => inner.meta.remove(key),
            };
            return Err(e);
        }
        Ok(())
    }

    /// Reads a metadata value.
    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.inner().meta.get(key).cloned())
    }
}
