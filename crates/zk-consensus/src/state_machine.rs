//! openraft's `RaftStateMachine` on `zk_storage::StateStore`.
//!
//! Apply: every entry openraft hands over in one call goes into ONE
//! `StateStore::apply_batch`: normal entries are decoded and applied with
//! `zk_datatree::apply` at zxid = the entry's log index; blank and membership entries only
//! advance `last_applied` (membership is recorded too). `last_applied`, the membership and the
//! highest leader time seen are written in the same RocksDB batch as the tree changes, so the
//! store is always at a batch boundary and openraft re-applies exactly what a crash lost. The
//! listener is called for each command inside the batch's `after` (apply gate held), and the
//! responders waiting in `propose` are answered after that.
//!
//! Snapshots are RocksDB checkpoints in `snapshots/<index>-<term>` (both zero-padded to 20
//! digits, so that name order is log order), built into a temporary directory and renamed
//! when complete; the last two are kept. A snapshot received from the leader arrives in
//! `snapshots/recv-*` (see `peer`), is renamed like a built one and installed by replacing the
//! state store's tree with it (`StateStore::install_checkpoint`); the listener is told, as
//! nothing between the old tree and the snapshot was applied here.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use futures_util::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use zk_datatree::{Applied, Command};
use zk_storage::StateStore;

use crate::ApplyListener;
use crate::log_storage::blocking;
use crate::types::{
    LogId, Snapshot, SnapshotDir, SnapshotMeta, StoredMembership, TypeConfig, corrupt,
    decode_log_id, encode_log_id,
};

/// Meta key of the last applied log id (`term ‖ index`).
pub(crate) const META_LAST_APPLIED: &[u8] = b"raft/last_applied";
/// Meta key of the last applied membership (JSON).
pub(crate) const META_MEMBERSHIP: &[u8] = b"raft/membership";
/// Meta key of the highest `time_ms` of any applied command (i64 BE): the floor of the
/// leader's clock for the next proposals, also after a restart.
pub(crate) const META_LAST_TIME: &[u8] = b"zk/last_time_ms";

/// The largest apply batch applied on the state machine's own task rather than on the
/// blocking pool: everything a busy server commits between two fsyncs (32 sessions × 64
/// writes in flight make batches of up to 2048), about 10 ms of apply at most. Only a
/// replay after a restart or a catch-up hands over more.
const INLINE_APPLY_MAX: usize = 4096;

/// The metadata file inside a snapshot directory.
pub(crate) const SNAPSHOT_META_FILE: &str = "snapshot.meta.json";
/// The name prefix of snapshot directories being received from the leader.
const RECEIVING_PREFIX: &str = "recv-";
/// How many complete snapshots to keep.
const SNAPSHOTS_KEPT: usize = 2;

/// State shared between the state machine (which writes it inside the apply gate) and the
/// `Consensus` handle (which reads it).
#[derive(Debug)]
pub(crate) struct Shared {
    /// The index of the last applied entry (0 before any).
    pub(crate) last_applied: AtomicI64,
    /// The highest `time_ms` of any applied command.
    pub(crate) last_time_ms: AtomicI64,
}

/// Reads `last_applied`, the membership and the last leader time from the store's meta.
pub(crate) fn read_applied_meta(
    store: &StateStore,
) -> io::Result<(Option<LogId>, StoredMembership, i64)> {
    let meta = |key| store.get_meta(key).map_err(io::Error::other);
    let last_applied = match meta(META_LAST_APPLIED)? {
        Some(bytes) => decode_log_id(&bytes)?,
        None => None,
    };
    let membership = match meta(META_MEMBERSHIP)? {
        Some(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("membership: {e}")))?
        }
        None => StoredMembership::default(),
    };
    let last_time = match meta(META_LAST_TIME)? {
        Some(bytes) => i64::from_be_bytes(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("last time_ms"))?,
        ),
        None => 0,
    };
    Ok((last_applied, membership, last_time))
}

/// The state machine openraft drives.
pub(crate) struct StateMachine {
    store: Arc<StateStore>,
    shared: Arc<Shared>,
    listener: Arc<dyn ApplyListener>,
    snapshots: Arc<SnapshotDirs>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    alive: Arc<()>,
}

impl StateMachine {
    /// Creates the state machine over an open store; `snapshot_dir` must be on the same file
    /// system as the store (checkpoints hard-link its files).
    pub(crate) fn new(
        store: Arc<StateStore>,
        shared: Arc<Shared>,
        listener: Arc<dyn ApplyListener>,
        snapshots: Arc<SnapshotDirs>,
        alive: Arc<()>,
    ) -> io::Result<Self> {
        let (last_applied, membership, _) = read_applied_meta(&store)?;
        Ok(StateMachine {
            store,
            shared,
            listener,
            snapshots,
            last_applied,
            membership,
            alive,
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotDir;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        let mut commands: Vec<(i64, Arc<Command>)> = Vec::new();
        let mut responders = Vec::new();
        let mut last = None;
        let mut membership = None;
        while let Some((entry, responder)) = entries.try_next().await? {
            let index = entry.log_id.index;
            match entry.payload {
                EntryPayload::Normal(cmd) => {
                    let cmd = cmd
                        .command()
                        .map_err(|e| corrupt(format!("log entry {index}: {e}")))?;
                    commands.push((index as i64, cmd));
                }
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m));
                }
                EntryPayload::Blank => {}
            }
            if let Some(r) = responder {
                responders.push((r, index as i64));
            }
            last = Some(entry.log_id);
        }
        let Some(last) = last else {
            return Ok(());
        };

        let mut meta: Vec<(&'static [u8], Vec<u8>)> =
            vec![(META_LAST_APPLIED, encode_log_id(&last).to_vec())];
        if let Some(m) = &membership {
            meta.push((
                META_MEMBERSHIP,
                serde_json::to_vec(m).map_err(io::Error::other)?,
            ));
        }
        let batch_time = commands.iter().map(|(_, c)| c.time_ms).max();
        let last_time = batch_time.map(|t| t.max(self.shared.last_time_ms.load(Ordering::Relaxed)));
        if let Some(t) = last_time {
            meta.push((META_LAST_TIME, t.to_be_bytes().to_vec()));
        }

        let store = self.store.clone();
        let shared = self.shared.clone();
        let listener = self.listener.clone();
        let last_index = last.index as i64;
        // A batch of ordinary size is applied on this task: a hop to the blocking pool and
        // back costs more than a small apply (RocksDB writes without fsync), and on the
        // thread that decoded the commands their memory is freed where it was allocated
        // (mimalloc's frees from another thread were 5% of the CPU under create+delete).
        // A replay or catch-up batch goes to the blocking pool.
        let inline = commands.len() <= INLINE_APPLY_MAX;
        let run = move || {
            let meta: Vec<(&[u8], &[u8])> = meta.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            store.apply_batch(
                &meta,
                move |tree| {
                    commands
                        .into_iter()
                        .map(|(zxid, cmd)| {
                            let applied = zk_datatree::apply(tree, zxid, &cmd);
                            (zxid, cmd, applied)
                        })
                        .collect::<Vec<(i64, Arc<Command>, Applied)>>()
                },
                |results| {
                    // Visible to readers together with the tree: both change under the gate.
                    shared.last_applied.store(last_index, Ordering::Release);
                    if let Some(t) = last_time {
                        shared.last_time_ms.fetch_max(t, Ordering::Relaxed);
                    }
                    for (zxid, cmd, applied) in results {
                        listener.applied(*zxid, cmd, applied);
                    }
                },
            )
        };
        if inline {
            run().map_err(crate::log_storage::io_error)?;
        } else {
            blocking(run).await?;
        }

        self.last_applied = Some(last);
        if let Some(m) = membership {
            self.membership = m;
        }
        for (responder, zxid) in responders {
            responder.send(zxid);
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<SnapshotBuilder> {
        // A checkpoint costs milliseconds (a memtable flush and hard links): never deferred.
        Some(self.get_snapshot_builder().await)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
            snapshots: self.snapshots.clone(),
            _alive: self.alive.clone(),
        }
    }

    /// Not supported yet: a single node never receives a snapshot (openraft installs one only
    /// on a follower that lags behind the leader's purged log, and never at startup here,
    /// because the store's own `last_applied` is never behind its snapshots). An ensemble
    /// needs this: swap the state store's directory for the received checkpoint.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotDir,
    ) -> io::Result<()> {
        let store = self.store.clone();
        let shared = self.shared.clone();
        let listener = self.listener.clone();
        let snapshots = self.snapshots.clone();
        let meta_owned = meta.clone();
        let started = std::time::Instant::now();
        let last_time = blocking(move || {
            let path = snapshots
                .adopt(&snapshot.0, &meta_owned)
                .map_err(zk_storage::StorageError::from)?;
            let index = meta_owned.last_log_id.map_or(0, |id| id.index as i64);
            let mut last_time = 0;
            store.install_checkpoint(&path, |tree| {
                last_time = match tree.get_meta(META_LAST_TIME) {
                    Ok(Some(bytes)) => bytes
                        .as_slice()
                        .try_into()
                        .map(i64::from_be_bytes)
                        .unwrap_or(0),
                    _ => 0,
                };
                shared.last_applied.store(index, Ordering::Release);
                shared.last_time_ms.fetch_max(last_time, Ordering::Relaxed);
                listener.reset(index);
            })?;
            Ok(last_time)
        })
        .await?;
        tracing::info!(
            snapshot = %meta,
            last_time_ms = last_time,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot from the leader installed"
        );
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let snapshots = self.snapshots.clone();
        tokio::task::spawn_blocking(move || snapshots.current())
            .await
            .map_err(io::Error::other)?
    }
}

/// Builds a snapshot: a checkpoint of the store, taken at a batch boundary.
pub(crate) struct SnapshotBuilder {
    store: Arc<StateStore>,
    snapshots: Arc<SnapshotDirs>,
    _alive: Arc<()>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotDir;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let store = self.store.clone();
        let snapshots = self.snapshots.clone();
        tokio::task::spawn_blocking(move || snapshots.build(&store))
            .await
            .map_err(io::Error::other)?
    }
}

/// The snapshot directory: `<index>-<term>` for complete snapshots, `tmp-<n>` while building.
pub(crate) struct SnapshotDirs {
    dir: PathBuf,
    next_tmp: AtomicU64,
}

/// Parses `<index>-<term>`.
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let (index, term) = name.split_once('-')?;
    Some((index.parse().ok()?, term.parse().ok()?))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

impl SnapshotDirs {
    /// Opens the snapshot directory, removing what a crash left of unfinished builds and
    /// transfers.
    pub(crate) fn open(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        for item in fs::read_dir(&dir)? {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with("tmp-") || name.starts_with(RECEIVING_PREFIX) {
                fs::remove_dir_all(item.path())?;
            }
        }
        Ok(SnapshotDirs {
            dir,
            next_tmp: AtomicU64::new(0),
        })
    }

    /// Returns the complete snapshots, oldest first.
    fn complete(&self) -> io::Result<Vec<(u64, u64, PathBuf)>> {
        let mut out = Vec::new();
        for item in fs::read_dir(&self.dir)? {
            let item = item?;
            if let Some((index, term)) = parse_name(&item.file_name().to_string_lossy()) {
                out.push((index, term, item.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// A new, empty directory for a snapshot being received (removed again on open if the
    /// transfer never completes).
    pub(crate) fn receiving_dir(&self) -> io::Result<PathBuf> {
        let path = self.dir.join(format!(
            "{RECEIVING_PREFIX}{}-{}",
            std::process::id(),
            self.next_tmp.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&path)?;
        Ok(path)
    }

    /// Makes a received snapshot directory the current snapshot: renamed to its
    /// `<index>-<term>` name with its metadata file (re)written, every other snapshot
    /// removed (openraft's contract for an installed snapshot). Returns its path.
    fn adopt(&self, received: &Path, meta: &SnapshotMeta) -> io::Result<PathBuf> {
        let (index, term) = meta
            .last_log_id
            .map_or((0, 0), |id| (id.index, id.leader_id.term));
        let path = self.dir.join(format!("{index:020}-{term:020}"));
        if received != path {
            if path.exists() {
                fs::remove_dir_all(&path)?;
            }
            let meta_file = received.join(SNAPSHOT_META_FILE);
            fs::write(
                &meta_file,
                serde_json::to_vec(meta).map_err(io::Error::other)?,
            )?;
            fs::File::open(&meta_file)?.sync_all()?;
            sync_dir(received)?;
            fs::rename(received, &path)?;
            sync_dir(&self.dir)?;
        }
        for (_, _, other) in self.complete()? {
            if other != path {
                fs::remove_dir_all(other)?;
            }
        }
        Ok(path)
    }

    fn current(&self) -> io::Result<Option<Snapshot>> {
        let Some((_, _, path)) = self.complete()?.pop() else {
            return Ok(None);
        };
        let bytes = fs::read(path.join(SNAPSHOT_META_FILE))?;
        let meta: SnapshotMeta = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(format!("snapshot meta in {}: {e}", path.display())))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: SnapshotDir(path),
        }))
    }

    fn build(&self, store: &StateStore) -> io::Result<Snapshot> {
        let tmp = self.dir.join(format!(
            "tmp-{}-{}",
            std::process::id(),
            self.next_tmp.fetch_add(1, Ordering::Relaxed)
        ));
        let meta = store
            .checkpoint(&tmp, &[META_LAST_APPLIED, META_MEMBERSHIP])
            .map_err(io::Error::other)?;
        let last_log_id = match &meta[0] {
            Some(bytes) => decode_log_id(bytes)?,
            None => None,
        };
        let last_membership = match &meta[1] {
            Some(bytes) => {
                serde_json::from_slice(bytes).map_err(|e| corrupt(format!("membership: {e}")))?
            }
            None => StoredMembership::default(),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
        };
        let meta_file = tmp.join(SNAPSHOT_META_FILE);
        fs::write(
            &meta_file,
            serde_json::to_vec(&meta).map_err(io::Error::other)?,
        )?;
        fs::File::open(&meta_file)?.sync_all()?;
        sync_dir(&tmp)?;

        let (index, term) = last_log_id.map_or((0, 0), |id| (id.index, id.leader_id.term));
        let path = self.dir.join(format!("{index:020}-{term:020}"));
        if path.exists() {
            // The same state was snapshotted before: keep the existing one.
            fs::remove_dir_all(&tmp)?;
        } else {
            fs::rename(&tmp, &path)?;
            sync_dir(&self.dir)?;
        }

        let complete = self.complete()?;
        for (_, _, old) in &complete[..complete.len().saturating_sub(SNAPSHOTS_KEPT)] {
            fs::remove_dir_all(old)?;
        }
        tracing::info!(snapshot = %path.display(), "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: SnapshotDir(path),
        })
    }
}
