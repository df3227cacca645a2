//! The state machine's RocksDB instance: the data tree, the ephemerals index, the session table
//! and the apply metadata, written one apply batch at a time.
//!
//! Column families (see `codec` for the byte layouts):
//! - `nodes`: `parent ‖ 0x00 ‖ name` → the node (Stat fields, ACL, data).
//! - `ephemerals`: `session_id (BE) ‖ path` → empty; a session's ephemerals are one prefix.
//! - `sessions`: `session_id (BE)` → timeout.
//! - `meta`: opaque keys and values written by the caller with each batch (last applied log id,
//!   membership, ...) plus this crate's own keys under [`META_PREFIX_RESERVED`].
//!
//! On disk: the store's directory holds `LIVE`, naming the generation directory (`gen-N`) that
//! holds the RocksDB instance. Installing a snapshot ([`StateStore::install_checkpoint`]) builds
//! generation N+1 from a checkpoint beside the live one, then switches `LIVE` with an atomic
//! rename: a crash at any point leaves one complete tree, the old or the new.
//!
//! Apply: [`StateStore::apply_batch`] runs the caller's closure against an overlay (an in-memory
//! map of pending changes over the DB; rust-rocksdb has no `WriteBatchWithIndex`), then moves
//! every change and the caller's meta into the write-behind set (`Behind`), which readers
//! consult before the DB. The set is written to RocksDB in one `WriteBatch` without RocksDB's
//! WAL once it holds [`BEHIND_CHANGES_MAX`] changes or [`BEHIND_BYTES_MAX`] bytes, before a
//! checkpoint, and when the store is dropped: a node written many times in between costs one
//! memtable insert, not one per write. The Raft log is the durable copy of every command, and
//! openraft re-applies the log after the store's `last_applied` (written in the same atomic
//! batch) at start-up. The column families are flushed together (atomic flush), so what a
//! crash leaves on disk is exactly the store at some write-behind boundary. The log keeps
//! everything after it: it is purged only behind a snapshot, and a snapshot is a checkpoint,
//! which writes the set and flushes first.

use std::cell::RefCell;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

use bytes::Bytes;
use rocksdb::checkpoint::Checkpoint;
use rocksdb::{
    Cache, ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, ReadOptions,
    WriteBatch, WriteOptions,
};
use zk_datatree::{MemStore, Node, Session, TreeStore, index_owner, init_system_nodes};

use crate::codec::{
    children_range, decode_node, decode_session, decode_session_key, encode_node, encode_node_into,
    encode_session, ephemeral_key, node_key, node_key_into, session_key,
};
use crate::{StorageError, tuning};

const CF_NODES: &str = "nodes";
const CF_EPHEMERALS: &str = "ephemerals";
const CF_SESSIONS: &str = "sessions";
const CF_META: &str = "meta";

/// Meta keys starting with this prefix belong to `zk-storage`; callers must not write them.
pub const META_PREFIX_RESERVED: &[u8] = b"zk-storage/";
/// The number of nodes, kept up to date by every apply batch (u64 BE).
const META_NODE_COUNT: &[u8] = b"zk-storage/node_count";

/// The block cache shared by the state store's column families.
const BLOCK_CACHE_BYTES: usize = 64 << 20;

/// The file naming the live generation directory.
const LIVE_FILE: &str = "LIVE";
/// The prefix of generation directories.
const GEN_PREFIX: &str = "gen-";

/// The state machine's store. Apply is its only writer; readers may read at any time, and take
/// [`StateStore::read_gate`] when they need a read to be atomic with respect to an apply batch
/// and what the batch's `after` callback delivers (watch events, responses).
pub struct StateStore {
    /// The live RocksDB instance; replaced (under the apply gate and the writer lock) only by
    /// [`StateStore::install_checkpoint`]. Every method takes it once, never nested.
    db: RwLock<DB>,
    /// The store's directory (holding `LIVE` and the generations).
    root: PathBuf,
    /// The live generation's number.
    generation: AtomicU64,
    /// Held for writing while a batch joins the write-behind set and its `after` callback runs.
    gate: RwLock<()>,
    /// Serializes writers (apply batches and checkpoints), so that the overlay's reads of the
    /// DB cannot interleave with another write and a checkpoint is at a batch boundary. It
    /// holds what apply read or wrote lately, which only apply reads.
    writer: Mutex<ReadCache>,
    /// The node count as of the last applied batch.
    node_count: AtomicU64,
    /// Applied changes not yet written to the DB. Lock order: `gate`, then `behind`, then
    /// `db`.
    behind: RwLock<Behind>,
    /// The options of every node read, made once: the crate's `get_cf` makes and frees a
    /// C++ `ReadOptions` per call (a create's check that its path is free is one such read).
    point_reads: ReadOptions,
}

/// The applied changes not yet written to RocksDB, as they are after the last applied batch.
/// Every read of the store looks here before the DB, holding the lock across both.
#[derive(Default)]
struct Behind {
    /// Node key → the node (`None`: removed).
    nodes: BTreeMap<Vec<u8>, BehindNode>,
    /// Ephemeral key → present.
    ephemerals: BTreeMap<Vec<u8>, bool>,
    /// Session id → the session (`None`: removed).
    sessions: BTreeMap<i64, Option<Session>>,
    meta: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Changes taken in since the last write (a key changed twice counts twice): bounds the
    /// log a restart re-applies.
    changes: usize,
    /// About the bytes `nodes` holds (a replaced node is counted again).
    bytes: usize,
}

/// A node of the write-behind set.
struct BehindNode {
    /// `None`: removed.
    node: Option<Node>,
    /// Whether the DB holds the key: a node created and removed again before the set is
    /// written costs the DB nothing, not even a tombstone.
    in_db: bool,
}

/// The most changes the write-behind set takes before it is written.
const BEHIND_CHANGES_MAX: usize = 32 << 10;
/// The most node bytes the write-behind set holds before it is written.
const BEHIND_BYTES_MAX: usize = 8 << 20;

impl Behind {
    fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.ephemerals.is_empty()
            && self.sessions.is_empty()
            && self.meta.is_empty()
    }

    fn is_full(&self) -> bool {
        self.changes >= BEHIND_CHANGES_MAX || self.bytes >= BEHIND_BYTES_MAX
    }

    /// The keys of `cf_name` in `[start, end)` that the set adds (`true`) or removes.
    fn key_changes(&self, cf_name: &str, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, bool)> {
        let upper = match end {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        let range = (Bound::Included(start), upper);
        match cf_name {
            CF_NODES => self
                .nodes
                .range::<[u8], _>(range)
                .map(|(k, n)| (k.clone(), n.node.is_some()))
                .collect(),
            CF_EPHEMERALS => self
                .ephemerals
                .range::<[u8], _>(range)
                .map(|(k, p)| (k.clone(), *p))
                .collect(),
            _ => unreachable!("no key scans of {cf_name}"),
        }
    }
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.root)
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .field("node_count", &self.node_count.load(Ordering::Relaxed))
            .finish()
    }
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    // The column families are created by `open`; a missing one is a bug, not an I/O error.
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("state store column family {name} missing"))
}

/// Maps a poisoned lock to its guard: the locks guard no data of their own (the data is in
/// RocksDB, written atomically), so a panic elsewhere does not make them inconsistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read_lock<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn generation_dir(root: &Path, generation: u64) -> PathBuf {
    root.join(format!("{GEN_PREFIX}{generation}"))
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Opens (creating if needed) a RocksDB instance with the state store's column families.
fn open_db(dir: &Path) -> Result<DB, StorageError> {
    std::fs::create_dir_all(dir)?;
    let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    let cfs = [
        (CF_NODES, 8 << 20),
        (CF_EPHEMERALS, 8 << 20),
        (CF_SESSIONS, 4 << 20),
        (CF_META, 4 << 20),
    ]
    .map(|(name, write_buffer)| {
        ColumnFamilyDescriptor::new(name, tuning::state_cf_options(&cache, write_buffer))
    });
    Ok(DB::open_cf_descriptors(
        &tuning::state_db_options(),
        dir,
        cfs,
    )?)
}

/// Reads `LIVE` (absent in a new store: generation 0).
fn live_generation(root: &Path) -> Result<u64, StorageError> {
    match std::fs::read_to_string(root.join(LIVE_FILE)) {
        Ok(text) => text
            .trim()
            .strip_prefix(GEN_PREFIX)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StorageError::Corrupt(format!("{LIVE_FILE} says {text:?}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Points `LIVE` at `generation`: written beside it, fsynced, renamed over it, directory
/// fsynced.
fn set_live_generation(root: &Path, generation: u64) -> Result<(), StorageError> {
    let tmp = root.join(format!("{LIVE_FILE}.tmp"));
    std::fs::write(&tmp, format!("{GEN_PREFIX}{generation}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, root.join(LIVE_FILE))?;
    sync_dir(root)
}

/// Fills `target` (new) with the files of the checkpoint `src`: SST and blob files, which
/// RocksDB never modifies, are hard-linked (copied if linking fails), the rest is copied;
/// everything is fsynced.
fn populate_from_checkpoint(src: &Path, target: &Path) -> Result<(), StorageError> {
    std::fs::create_dir_all(target)?;
    for item in std::fs::read_dir(src)? {
        let item = item?;
        if !item.file_type()?.is_file() {
            return Err(StorageError::Invalid(format!(
                "checkpoint {} holds a non-file {:?}",
                src.display(),
                item.file_name()
            )));
        }
        let name = item.file_name();
        let to = target.join(&name);
        let immutable = Path::new(&name)
            .extension()
            .is_some_and(|e| e == "sst" || e == "blob");
        if !(immutable && std::fs::hard_link(item.path(), &to).is_ok()) {
            std::fs::copy(item.path(), &to)?;
            std::fs::File::open(&to)?.sync_all()?;
        }
    }
    sync_dir(target)
}

/// The options of apply's writes: no WAL (the Raft log is the state's log, see the module's
/// doc).
fn unlogged() -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.disable_wal(true);
    opts
}

fn decode_u64(value: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = value
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("u64 meta value of {} bytes", value.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

impl StateStore {
    /// Opens (creating if needed) the state store in `dir`. A new store is initialized with
    /// ZooKeeper's system nodes (`/`, `/zookeeper`, `/zookeeper/quota`, `/zookeeper/config`) in
    /// one batch.
    pub fn open(dir: &Path) -> Result<StateStore, StorageError> {
        std::fs::create_dir_all(dir)?;
        let generation = live_generation(dir)?;
        // Generations other than the live one are what a crash left of an install (the new
        // one unfinished, or the old one not yet removed).
        for item in std::fs::read_dir(dir)? {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with(GEN_PREFIX) && item.path() != generation_dir(dir, generation) {
                std::fs::remove_dir_all(item.path())?;
            }
        }
        let db = open_db(&generation_dir(dir, generation))?;
        if generation == 0 && !dir.join(LIVE_FILE).exists() {
            set_live_generation(dir, 0)?;
        }
        let store = StateStore {
            db: RwLock::new(db),
            root: dir.to_path_buf(),
            generation: AtomicU64::new(generation),
            gate: RwLock::new(()),
            writer: Mutex::default(),
            node_count: AtomicU64::new(0),
            behind: RwLock::default(),
            point_reads: ReadOptions::default(),
        };
        match store.get_meta(META_NODE_COUNT)? {
            Some(count) => store
                .node_count
                .store(decode_u64(&count)?, Ordering::Relaxed),
            None => store.init()?,
        }
        Ok(store)
    }

    /// Replaces the whole store with the contents of a checkpoint directory made by
    /// [`StateStore::checkpoint`] (possibly on another replica and copied here; it is left as
    /// it is). The new tree is built as the next generation beside the live one and made live
    /// with an atomic rename; then, holding the apply gate exclusively, the live instance is
    /// swapped and `after` runs, so a gated reader sees the old tree or the new one together
    /// with whatever `after` did.
    pub fn install_checkpoint(
        &self,
        src: &Path,
        after: impl FnOnce(&StateStore),
    ) -> Result<(), StorageError> {
        let mut writer = lock(&self.writer);
        *writer = ReadCache::default();
        let old = self.generation.load(Ordering::Relaxed);
        let next = old + 1;
        let target = generation_dir(&self.root, next);
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        populate_from_checkpoint(src, &target)?;
        let db = open_db(&target)?;
        let count = match db.get_cf(cf(&db, CF_META), META_NODE_COUNT)? {
            Some(v) => decode_u64(&v)?,
            None => {
                return Err(StorageError::Corrupt(format!(
                    "checkpoint {} has no node count: not a state store",
                    src.display()
                )));
            }
        };
        // From here on a restart opens the new generation.
        set_live_generation(&self.root, next)?;
        {
            let _gate = self.gate.write().unwrap_or_else(|e| e.into_inner());
            // What was not written belongs to the tree being replaced.
            *write_lock(&self.behind) = Behind::default();
            let mut live = self.db.write().unwrap_or_else(|e| e.into_inner());
            let previous = std::mem::replace(&mut *live, db);
            drop(live);
            drop(previous);
            self.generation.store(next, Ordering::Relaxed);
            self.node_count.store(count, Ordering::Relaxed);
            after(self);
        }
        std::fs::remove_dir_all(generation_dir(&self.root, old))?;
        Ok(())
    }

    /// Opens a checkpoint directory made by [`StateStore::checkpoint`] in place, for reading
    /// it (tests, tools). RocksDB writes its own files into it on open.
    pub fn open_checkpoint(dir: &Path) -> Result<StateStore, StorageError> {
        let db = open_db(dir)?;
        let count = match db.get_cf(cf(&db, CF_META), META_NODE_COUNT)? {
            Some(v) => decode_u64(&v)?,
            None => 0,
        };
        Ok(StateStore {
            db: RwLock::new(db),
            root: dir.to_path_buf(),
            generation: AtomicU64::new(0),
            gate: RwLock::new(()),
            writer: Mutex::default(),
            node_count: AtomicU64::new(count),
            behind: RwLock::default(),
            point_reads: ReadOptions::default(),
        })
    }

    /// Writes the system nodes of a new tree, and the node count that marks the store as
    /// initialized, in one batch: a crash leaves either nothing or a complete tree.
    fn init(&self) -> Result<(), StorageError> {
        let mut tree = MemStore::default();
        init_system_nodes(&mut tree);
        let db = read_lock(&self.db);
        let mut batch = WriteBatch::default();
        for (path, node) in tree.nodes() {
            batch.put_cf(cf(&db, CF_NODES), node_key(path), encode_node(node));
        }
        let count = tree.nodes().len() as u64;
        batch.put_cf(cf(&db, CF_META), META_NODE_COUNT, count.to_be_bytes());
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        db.write_opt(batch, &opts)?;
        self.node_count.store(count, Ordering::Relaxed);
        Ok(())
    }

    /// Applies one batch: runs `f` against an overlay of the store (its reads see the batch's
    /// own earlier writes), then moves all of the batch's changes and the `meta` pairs into the
    /// write-behind set (written to RocksDB when full: see the module's doc) and calls
    /// `after(&r)`, both while holding the apply gate exclusively, so that a reader holding [`StateStore::read_gate`]
    /// sees either none of the batch or all of it together with everything `after` delivered.
    ///
    /// Batches are serialized. If a read of the DB fails inside `f`, the overlay panics (see
    /// the crate's failure policy) and nothing of the batch is written.
    pub fn apply_batch<R>(
        &self,
        meta: &[(&[u8], &[u8])],
        f: impl FnOnce(&mut dyn TreeStore) -> R,
        after: impl FnOnce(&R),
    ) -> Result<R, StorageError> {
        if let Some((key, _)) = meta
            .iter()
            .find(|(k, _)| k.starts_with(META_PREFIX_RESERVED))
        {
            return Err(StorageError::Invalid(format!(
                "meta key {:?} is reserved",
                String::from_utf8_lossy(key)
            )));
        }
        let mut writer = lock(&self.writer);
        // Taken out while the batch runs: if it does not get written, apply starts over
        // with an empty cache.
        let mut overlay = Overlay::new(self, std::mem::take(&mut *writer));
        let r = f(&mut overlay);
        let full = {
            let _gate = self.gate.write().unwrap_or_else(|e| e.into_inner());
            let mut behind = write_lock(&self.behind);
            let (node_count, cache) = overlay.into_behind(meta, &mut behind);
            let full = behind.is_full();
            drop(behind);
            *writer = cache;
            self.node_count.store(node_count, Ordering::Relaxed);
            after(&r);
            full
        };
        if full {
            self.write_behind()?;
        }
        Ok(r)
    }

    /// Writes the write-behind set to the DB in one batch and empties it. The caller holds
    /// the writer lock, so that nothing joins the set meanwhile; readers go on reading it
    /// until the DB holds the same.
    fn write_behind(&self) -> Result<(), StorageError> {
        {
            let behind = read_lock(&self.behind);
            if behind.is_empty() {
                return Ok(());
            }
            let db = read_lock(&self.db);
            let db = &*db;
            let mut batch = WriteBatch::default();
            let nodes = cf(db, CF_NODES);
            let mut value = Vec::new();
            // In key order, as the maps hold them: the memtable's skip list starts each insert
            // from where the previous one went in.
            for (key, node) in &behind.nodes {
                match &node.node {
                    Some(n) => {
                        encode_node_into(n, &mut value);
                        batch.put_cf(nodes, key, &value);
                    }
                    None if node.in_db => batch.delete_cf(nodes, key),
                    None => {}
                }
            }
            let cf_ephemerals = cf(db, CF_EPHEMERALS);
            for (key, present) in &behind.ephemerals {
                if *present {
                    batch.put_cf(cf_ephemerals, key, []);
                } else {
                    batch.delete_cf(cf_ephemerals, key);
                }
            }
            let cf_sessions = cf(db, CF_SESSIONS);
            for (id, session) in &behind.sessions {
                match session {
                    Some(s) => batch.put_cf(cf_sessions, session_key(*id), encode_session(s)),
                    None => batch.delete_cf(cf_sessions, session_key(*id)),
                }
            }
            let cf_meta = cf(db, CF_META);
            for (key, value) in &behind.meta {
                batch.put_cf(cf_meta, key, value);
            }
            db.write_opt(batch, &unlogged())?;
        }
        *write_lock(&self.behind) = Behind::default();
        Ok(())
    }

    /// Takes the apply gate for reading: while the guard lives no batch is written and no
    /// `after` callback runs. Hold it across "read a node, register its watch" so that no
    /// change (and its watch event) can fall in between. Never hold it across an `.await`.
    pub fn read_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the node at `path`.
    pub fn node(&self, path: &str) -> Result<Option<Node>, StorageError> {
        self.node_by_key(&node_key(path))
    }

    fn node_by_key(&self, key: &[u8]) -> Result<Option<Node>, StorageError> {
        let behind = read_lock(&self.behind);
        if let Some(node) = behind.nodes.get(key) {
            return Ok(node.node.clone());
        }
        let db = read_lock(&self.db);
        match db.get_pinned_cf_opt(cf(&db, CF_NODES), key, &self.point_reads)? {
            None => Ok(None),
            Some(value) => decode_node(Bytes::copy_from_slice(&value)).map(Some),
        }
    }

    /// Returns the names of the children of `path`, sorted (bytewise; ZooKeeper clients must
    /// not rely on any order anyway).
    pub fn children(&self, path: &str) -> Result<Vec<String>, StorageError> {
        let (start, end) = children_range(path);
        let mut names = Vec::new();
        self.scan(CF_NODES, &start, Some(end), |key| {
            names.push(utf8(&key[start.len()..])?);
            Ok(())
        })?;
        Ok(names)
    }

    /// Returns the paths of the ephemerals owned by `session_id`, sorted.
    pub fn ephemerals(&self, session_id: i64) -> Result<Vec<String>, StorageError> {
        let start = session_id.to_be_bytes();
        let mut paths = Vec::new();
        self.scan(CF_EPHEMERALS, &start, prefix_end(&start), |key| {
            paths.push(utf8(&key[start.len()..])?);
            Ok(())
        })?;
        Ok(paths)
    }

    /// Calls `each` with every key of `cf_name` in `[start, end)` (unbounded above for `None`),
    /// in order: the DB's keys merged with the write-behind set's additions and removals.
    fn scan(
        &self,
        cf_name: &str,
        start: &[u8],
        end: Option<Vec<u8>>,
        mut each: impl FnMut(&[u8]) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let behind = read_lock(&self.behind);
        let changes = behind.key_changes(cf_name, start, end.as_deref());
        let mut changes = changes.into_iter().peekable();
        let mut opts = ReadOptions::default();
        if let Some(end) = end {
            opts.set_iterate_upper_bound(end);
        }
        let db = read_lock(&self.db);
        let iter = db.iterator_cf_opt(
            cf(&db, cf_name),
            opts,
            IteratorMode::From(start, Direction::Forward),
        );
        for item in iter {
            let (key, _) = item?;
            // The set's keys below this one, then this one as the set has it (if it does).
            let mut shadowed = false;
            while let Some((changed, present)) = changes.peek() {
                match changed.as_slice().cmp(&key) {
                    std::cmp::Ordering::Greater => break,
                    order => {
                        shadowed = order == std::cmp::Ordering::Equal;
                        if *present {
                            each(changed)?;
                        }
                        changes.next();
                    }
                }
            }
            if !shadowed {
                each(&key)?;
            }
        }
        for (changed, present) in changes {
            if present {
                each(&changed)?;
            }
        }
        drop(behind);
        Ok(())
    }

    /// Returns the session `session_id`.
    pub fn session(&self, session_id: i64) -> Result<Option<Session>, StorageError> {
        let behind = read_lock(&self.behind);
        if let Some(session) = behind.sessions.get(&session_id) {
            return Ok(*session);
        }
        let db = read_lock(&self.db);
        match db.get_cf(cf(&db, CF_SESSIONS), session_key(session_id))? {
            None => Ok(None),
            Some(value) => decode_session(&value).map(Some),
        }
    }

    /// Returns every session, by id (ordered by the id's big-endian bytes).
    pub fn sessions(&self) -> Result<Vec<(i64, Session)>, StorageError> {
        let behind = read_lock(&self.behind);
        let mut all = BTreeMap::new();
        let db = read_lock(&self.db);
        for item in db.iterator_cf(cf(&db, CF_SESSIONS), IteratorMode::Start) {
            let (key, value) = item?;
            all.insert(key.to_vec(), decode_session(&value)?);
        }
        for (id, session) in &behind.sessions {
            match session {
                Some(s) => all.insert(session_key(*id).to_vec(), *s),
                None => all.remove(session_key(*id).as_slice()),
            };
        }
        all.into_iter()
            .map(|(key, session)| Ok((decode_session_key(&key)?, session)))
            .collect()
    }

    /// Reads a meta value written by an apply batch.
    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let behind = read_lock(&self.behind);
        if let Some(value) = behind.meta.get(key) {
            return Ok(Some(value.clone()));
        }
        let db = read_lock(&self.db);
        Ok(db.get_cf(cf(&db, CF_META), key)?)
    }

    /// Returns the number of nodes in the tree, system nodes included.
    pub fn node_count(&self) -> u64 {
        self.node_count.load(Ordering::Relaxed)
    }

    /// Creates a RocksDB checkpoint of the whole store in `dir` (which must not exist; same
    /// file system, as SST files are hard-linked) and returns the values of `meta_keys` as of
    /// the checkpoint. It waits for any running batch and holds off the next one, so the
    /// checkpoint is at a batch boundary and the returned meta (e.g. the last applied log id)
    /// describes exactly what it contains.
    pub fn checkpoint(
        &self,
        dir: &Path,
        meta_keys: &[&[u8]],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        if dir.exists() {
            return Err(StorageError::Invalid(format!(
                "checkpoint target {} exists",
                dir.display()
            )));
        }
        let _writer = lock(&self.writer);
        self.write_behind()?;
        let meta = meta_keys
            .iter()
            .map(|key| self.get_meta(key))
            .collect::<Result<Vec<_>, _>>()?;
        Checkpoint::new(&read_lock(&self.db))?.create_checkpoint(dir)?;
        Ok(meta)
    }

    /// Writes what apply left in memory (the write-behind set) to the DB. Not needed for
    /// durability (the Raft log has it); it makes a clean stop leave nothing to re-apply.
    pub fn write_pending(&self) -> Result<(), StorageError> {
        let _writer = lock(&self.writer);
        self.write_behind()
    }
}

impl Drop for StateStore {
    fn drop(&mut self) {
        if let Err(e) = self.write_pending() {
            tracing::warn!(error = %e, "state store: writing the applied changes on close failed");
        }
    }
}

fn utf8(bytes: &[u8]) -> Result<String, StorageError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| StorageError::Corrupt(format!("non-UTF-8 name {bytes:?}")))
}

/// Panics with the crate's failure-policy message: `TreeStore` cannot return errors, and a
/// replica that cannot read its tree must stop rather than diverge.
fn fatal(what: &str, e: StorageError) -> ! {
    panic!(
        "state store failed during apply ({what}): {e}; stopping so that this replica cannot diverge"
    )
}

/// A hash map with a fast, non-cryptographic hasher: its keys come from apply, not from
/// anyone who could choose them to collide (a client's path is hashed only after it was
/// applied, which costs the client a write per key).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The pending changes of one apply batch over the DB. Keys are the DB keys, so the children
/// and ephemerals of a node are the same prefix ranges in the overlay as in RocksDB. Changed
/// nodes live in the read cache, marked dirty until the batch is written, so that a lookup
/// costs one hash probe whether the node was changed by this batch or read before.
struct Overlay<'s> {
    store: &'s StateStore,
    /// What apply read from the DB or wrote, in this batch and the ones before it.
    cache: RefCell<ReadCache>,
    /// The keys of the nodes this batch changed (each once; dirty in `cache`), with whether
    /// the node existed before the batch.
    dirty: Vec<(Vec<u8>, bool)>,
    /// Ephemeral key → present after the batch.
    ephemerals: BTreeMap<Vec<u8>, bool>,
    /// Session id → the session after the batch (`None`: removed).
    sessions: BTreeMap<i64, Option<Session>>,
    /// Nodes created minus nodes removed.
    node_delta: i64,
    /// The key of the last lookup, reused so that a lookup allocates nothing.
    key: RefCell<Vec<u8>>,
}

/// The nodes and sessions apply read or wrote lately, as they are in the store (the DB under
/// the write-behind set) once the running batch is taken in: a command reads the same nodes several times (the node, then again to
/// replace it; `/zookeeper/quota` for the quota checks) and its session, the commands of a
/// batch share many, and a busy node is written again and again. Apply is the only writer, so
/// what it wrote is what the store holds. Bounded: between batches it starts over past
/// [`READ_CACHE_MAX`] entries of a kind or [`READ_CACHE_BYTES`] of node data (a batch may take
/// it past them until it is written).
#[derive(Default)]
struct ReadCache {
    nodes: FastMap<Vec<u8>, CachedNode>,
    /// About what `nodes` holds: keys, data, ACLs and a fixed cost per entry.
    node_bytes: usize,
    sessions: FastMap<i64, Option<Session>>,
}

/// A node in the read cache (`None`: there is no node at that key).
struct CachedNode {
    node: Option<Node>,
    /// Written by the running batch, not yet in the DB.
    dirty: bool,
}

/// The most entries of one kind the read cache holds (ten thousand busy nodes fit).
const READ_CACHE_MAX: usize = 32 << 10;
/// The most node bytes the read cache holds.
const READ_CACHE_BYTES: usize = 8 << 20;

/// About the memory a cached node takes, with a key of `key_len` bytes.
fn cached_size(key_len: usize, node: &Option<Node>) -> usize {
    let node = node.as_ref().map_or(0, |n| {
        n.data.as_ref().map_or(0, Bytes::len) + 64 * n.acl.len()
    });
    128 + key_len + node
}

impl ReadCache {
    /// Caches what the DB holds at `key` (not cached yet).
    fn insert_clean(&mut self, key: Vec<u8>, node: Option<Node>) {
        self.node_bytes += cached_size(key.len(), &node);
        self.nodes.insert(key, CachedNode { node, dirty: false });
    }

    fn insert_session(&mut self, id: i64, session: Option<Session>) {
        self.sessions.insert(id, session);
    }

    /// Starts over where a bound is passed; only between batches (nothing dirty).
    fn trim(&mut self) {
        if self.nodes.len() > READ_CACHE_MAX || self.node_bytes > READ_CACHE_BYTES {
            self.nodes.clear();
            self.node_bytes = 0;
        }
        if self.sessions.len() > READ_CACHE_MAX {
            self.sessions.clear();
        }
    }
}

impl<'s> Overlay<'s> {
    fn new(store: &'s StateStore, cache: ReadCache) -> Self {
        Overlay {
            store,
            cache: RefCell::new(cache),
            dirty: Vec::new(),
            ephemerals: BTreeMap::new(),
            sessions: BTreeMap::new(),
            node_delta: 0,
            key: RefCell::default(),
        }
    }

    fn node_by_key(&self, key: &[u8]) -> Option<Node> {
        if let Some(cached) = self.cache.borrow().nodes.get(key) {
            return cached.node.clone();
        }
        let node = self
            .store
            .node_by_key(key)
            .unwrap_or_else(|e| fatal("read node", e));
        self.cache
            .borrow_mut()
            .insert_clean(key.to_vec(), node.clone());
        node
    }

    /// Sets the node at `path` for this batch (`None`: removed) and returns the node it
    /// replaces.
    fn replace(&mut self, path: &str, node: Option<Node>) -> Option<Node> {
        let key = self.key.get_mut();
        node_key_into(path, key);
        let cache = self.cache.get_mut();
        if !cache.nodes.contains_key(key.as_slice()) {
            let old = self
                .store
                .node_by_key(key)
                .unwrap_or_else(|e| fatal("read node", e));
            cache.insert_clean(key.clone(), old);
        }
        let Some(cached) = cache.nodes.get_mut(key.as_slice()) else {
            unreachable!("the node was cached above")
        };
        let size = cached_size(key.len(), &node);
        let old_size = cached_size(key.len(), &cached.node);
        let old = std::mem::replace(&mut cached.node, node);
        if !cached.dirty {
            cached.dirty = true;
            self.dirty.push((key.clone(), old.is_some()));
        }
        cache.node_bytes = (cache.node_bytes + size).saturating_sub(old_size);
        old
    }

    /// Moves every change of the batch plus `meta` into the write-behind set; returns the
    /// node count after the batch and the read cache with the batch's changes in it (for the
    /// next batch).
    fn into_behind(self, meta: &[(&[u8], &[u8])], behind: &mut Behind) -> (u64, ReadCache) {
        let Overlay {
            store,
            cache,
            dirty,
            ephemerals,
            sessions,
            node_delta,
            key: _,
        } = self;
        let mut cache = cache.into_inner();
        behind.changes += dirty.len() + ephemerals.len() + sessions.len();
        for (key, existed) in dirty {
            let Some(cached) = cache.nodes.get_mut(key.as_slice()) else {
                unreachable!("a dirty node stays cached until its batch is written")
            };
            cached.dirty = false;
            behind.bytes += cached_size(key.len(), &cached.node);
            let node = cached.node.clone();
            match behind.nodes.entry(key) {
                Entry::Occupied(mut e) => e.get_mut().node = node,
                // Not in the set: the DB holds what the batch found there.
                Entry::Vacant(e) => {
                    e.insert(BehindNode {
                        node,
                        in_db: existed,
                    });
                }
            }
        }
        behind.ephemerals.extend(ephemerals);
        for (id, session) in sessions {
            behind.sessions.insert(id, session);
            cache.insert_session(id, session);
        }
        let count = store.node_count().saturating_add_signed(node_delta);
        if node_delta != 0 {
            behind
                .meta
                .insert(META_NODE_COUNT.to_vec(), count.to_be_bytes().to_vec());
        }
        for (key, value) in meta {
            match behind.meta.get_mut(*key) {
                Some(old) => {
                    old.clear();
                    old.extend_from_slice(value);
                }
                None => {
                    behind.meta.insert(key.to_vec(), value.to_vec());
                }
            }
        }
        cache.trim();
        (count, cache)
    }

    /// Returns the keys in `[start, end)` (unbounded above for `None`) after the batch: the DB's
    /// keys in that range with `pending` (the batch's inserts (`true`) and removals in that
    /// range) applied.
    fn merged_range<'k>(
        &self,
        cf_name: &str,
        start: &[u8],
        end: Option<Vec<u8>>,
        pending: impl IntoIterator<Item = (&'k [u8], bool)>,
    ) -> BTreeSet<Vec<u8>> {
        let mut keys = BTreeSet::new();
        self.store
            .scan(cf_name, start, end, |key| {
                keys.insert(key.to_vec());
                Ok(())
            })
            .unwrap_or_else(|e| fatal("scan", e));
        for (key, present) in pending {
            if present {
                keys.insert(key.to_vec());
            } else {
                keys.remove(key);
            }
        }
        keys
    }
}

/// Returns the smallest key greater than every key starting with `prefix`, or `None` when
/// there is none (the prefix is all 0xff).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl TreeStore for Overlay<'_> {
    fn node(&self, path: &str) -> Option<Node> {
        let mut key = self.key.borrow_mut();
        node_key_into(path, &mut key);
        self.node_by_key(&key)
    }

    fn put_node(&mut self, path: &str, node: Node) {
        let new_owner = index_owner(node.ephemeral_owner);
        let old = self.replace(path, Some(node));
        let old_owner = old.as_ref().and_then(|n| index_owner(n.ephemeral_owner));
        if let Some(owner) = old_owner
            && new_owner != Some(owner)
        {
            self.ephemerals.insert(ephemeral_key(owner, path), false);
        }
        if let Some(owner) = new_owner {
            self.ephemerals.insert(ephemeral_key(owner, path), true);
        }
        if old.is_none() {
            self.node_delta += 1;
        }
    }

    fn remove_node(&mut self, path: &str) {
        let Some(old) = self.replace(path, None) else {
            return;
        };
        if let Some(owner) = index_owner(old.ephemeral_owner) {
            self.ephemerals.insert(ephemeral_key(owner, path), false);
        }
        self.node_delta -= 1;
    }

    fn children(&self, path: &str) -> Vec<String> {
        let (start, end) = children_range(path);
        let cache = self.cache.borrow();
        let pending = self
            .dirty
            .iter()
            .map(|(key, _)| key)
            .filter(|key| key.as_slice() >= start.as_slice() && key.as_slice() < end.as_slice())
            .map(|key| {
                let present = cache
                    .nodes
                    .get(key.as_slice())
                    .is_some_and(|c| c.node.is_some());
                (key.as_slice(), present)
            });
        self.merged_range(CF_NODES, &start, Some(end.clone()), pending)
            .into_iter()
            .map(|key| utf8(&key[start.len()..]).unwrap_or_else(|e| fatal("child name", e)))
            .collect()
    }

    fn ephemerals(&self, session_id: i64) -> Vec<String> {
        let start = session_id.to_be_bytes();
        let end = prefix_end(&start);
        let upper = match &end {
            Some(end) => Bound::Excluded(end.clone()),
            None => Bound::Unbounded,
        };
        let pending = self
            .ephemerals
            .range((Bound::Included(start.to_vec()), upper))
            .map(|(key, present)| (key.as_slice(), *present));
        self.merged_range(CF_EPHEMERALS, &start, end, pending)
            .into_iter()
            .map(|key| utf8(&key[start.len()..]).unwrap_or_else(|e| fatal("ephemeral path", e)))
            .collect()
    }

    fn session(&self, session_id: i64) -> Option<Session> {
        match self.sessions.get(&session_id) {
            Some(pending) => *pending,
            None => {
                if let Some(session) = self.cache.borrow().sessions.get(&session_id) {
                    return *session;
                }
                let session = self
                    .store
                    .session(session_id)
                    .unwrap_or_else(|e| fatal("read session", e));
                self.cache.borrow_mut().insert_session(session_id, session);
                session
            }
        }
    }

    fn put_session(&mut self, session_id: i64, session: Session) {
        self.sessions.insert(session_id, Some(session));
    }

    fn remove_session(&mut self, session_id: i64) {
        self.sessions.insert(session_id, None);
    }
}
