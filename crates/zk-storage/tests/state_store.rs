//! The RocksDB state store against zk-datatree's in-memory model: the same random command
//! sequences, applied to a `MemStore` one by one and through `StateStore::apply_batch` in
//! batches of 1..5 commands, must give the same outcomes, the same reads inside a batch (the
//! overlay) and the same tree after it, also after a reopen.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use proptest::prelude::*;
use zk_datatree::{
    Applied, Command, MemStore, Op, Session, TreeStore, apply, init_system_nodes, session_id_for,
};
use zk_protocol::jute::data::{ACL, Id};
use zk_protocol::jute::proto::{CheckVersionRequest, CreateRequest, DeleteRequest, SetDataRequest};
use zk_protocol::multi::MultiOp;
use zk_protocol::{OpCode, Request};
use zk_storage::StateStore;

const PATHS: [&str; 7] = ["/a", "/b", "/a/x", "/a/y", "/b/x", "/a/x/z", "/zookeeper/q"];

fn acl() -> Option<Vec<ACL>> {
    Some(vec![ACL {
        perms: 31,
        id: Id {
            scheme: Some("world".into()),
            id: Some("anyone".into()),
        },
    }])
}

/// Null, empty or one byte: null and empty data must stay distinct.
fn data(kind: u8) -> Option<Bytes> {
    match kind % 3 {
        0 => None,
        1 => Some(Bytes::new()),
        _ => Some(Bytes::from(vec![kind])),
    }
}

#[derive(Clone, Debug)]
enum Sub {
    Create { path: usize, flags: i32, data: u8 },
    Delete { path: usize, version: i32 },
    SetData { path: usize, version: i32, data: u8 },
    Check { path: usize, version: i32 },
}

#[derive(Clone, Debug)]
enum Step {
    NewSession,
    Close {
        session: usize,
    },
    Create {
        session: usize,
        path: usize,
        flags: i32,
        data: u8,
        container: bool,
    },
    Delete {
        session: usize,
        path: usize,
        version: i32,
    },
    SetData {
        session: usize,
        path: usize,
        version: i32,
        data: u8,
    },
    Multi {
        session: usize,
        ops: Vec<Sub>,
    },
}

fn sub() -> impl Strategy<Value = Sub> {
    prop_oneof![
        (0..PATHS.len(), 0..4i32, any::<u8>()).prop_map(|(path, flags, data)| Sub::Create {
            path,
            flags,
            data
        }),
        (0..PATHS.len(), -1..2i32).prop_map(|(path, version)| Sub::Delete { path, version }),
        (0..PATHS.len(), -1..2i32, any::<u8>()).prop_map(|(path, version, data)| Sub::SetData {
            path,
            version,
            data
        }),
        (0..PATHS.len(), -1..2i32).prop_map(|(path, version)| Sub::Check { path, version }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::NewSession),
        1 => (0..4usize).prop_map(|session| Step::Close { session }),
        5 => (0..4usize, 0..PATHS.len(), 0..4i32, any::<u8>(), prop::bool::weighted(0.1)).prop_map(
            |(session, path, flags, data, container)| Step::Create { session, path, flags, data, container }
        ),
        2 => (0..4usize, 0..PATHS.len(), -1..2i32)
            .prop_map(|(session, path, version)| Step::Delete { session, path, version }),
        2 => (0..4usize, 0..PATHS.len(), -1..2i32, any::<u8>())
            .prop_map(|(session, path, version, data)| Step::SetData { session, path, version, data }),
        2 => (0..4usize, prop::collection::vec(sub(), 1..4))
            .prop_map(|(session, ops)| Step::Multi { session, ops }),
    ]
}

fn create_req(path: usize, flags: i32, data_kind: u8) -> CreateRequest {
    CreateRequest {
        path: Some(PATHS[path].into()),
        data: data(data_kind),
        acl: acl(),
        flags,
    }
}

/// Turns steps into commands; session `i` of a step is the i-th session created so far
/// (a session created at zxid z has id `session_id_for(z, 1)` whatever happens later).
fn commands(steps: &[Step]) -> Vec<Command> {
    let mut sessions: Vec<i64> = Vec::new();
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let zxid = i as i64 + 1;
        let pick = |n: usize| {
            sessions
                .get(n % sessions.len().max(1))
                .copied()
                .unwrap_or(77)
        };
        let (session_id, op) = match s {
            Step::NewSession => {
                sessions.push(session_id_for(zxid, 1));
                (
                    0,
                    Op::CreateSession {
                        timeout_ms: 4000,
                        server_id: 1,
                    },
                )
            }
            Step::Close { session } => (pick(*session), Op::CloseSession),
            Step::Create {
                session,
                path,
                flags,
                data,
                container,
            } => {
                let opcode = if *container {
                    OpCode::CreateContainer
                } else {
                    OpCode::Create2
                };
                let flags = if *container { 4 } else { *flags };
                (
                    pick(*session),
                    Op::Request(Request::Create(opcode, create_req(*path, flags, *data))),
                )
            }
            Step::Delete {
                session,
                path,
                version,
            } => (
                pick(*session),
                Op::Request(Request::Delete(DeleteRequest {
                    path: Some(PATHS[*path].into()),
                    version: *version,
                })),
            ),
            Step::SetData {
                session,
                path,
                version,
                data: d,
            } => (
                pick(*session),
                Op::Request(Request::SetData(SetDataRequest {
                    path: Some(PATHS[*path].into()),
                    data: data(*d),
                    version: *version,
                })),
            ),
            Step::Multi { session, ops } => {
                let ops = ops
                    .iter()
                    .map(|o| match o {
                        Sub::Create { path, flags, data } => {
                            MultiOp::Create(OpCode::Create, create_req(*path, *flags, *data))
                        }
                        Sub::Delete { path, version } => MultiOp::Delete(DeleteRequest {
                            path: Some(PATHS[*path].into()),
                            version: *version,
                        }),
                        Sub::SetData {
                            path,
                            version,
                            data: d,
                        } => MultiOp::SetData(SetDataRequest {
                            path: Some(PATHS[*path].into()),
                            data: data(*d),
                            version: *version,
                        }),
                        Sub::Check { path, version } => MultiOp::Check(CheckVersionRequest {
                            path: Some(PATHS[*path].into()),
                            version: *version,
                        }),
                    })
                    .collect();
                (pick(*session), Op::Request(Request::Multi(ops)))
            }
        };
        out.push(Command {
            time_ms: 1000 + zxid,
            session_id,
            xid: i as i32,
            auth: Default::default(),
            features: zk_datatree::Features::default(),
            op,
        });
    }
    out
}

/// Every session id the commands mention.
fn session_ids(cmds: &[Command]) -> Vec<i64> {
    let mut ids: Vec<i64> = cmds
        .iter()
        .enumerate()
        .map(|(i, c)| match c.op {
            Op::CreateSession { .. } => session_id_for(i as i64 + 1, 1),
            _ => c.session_id,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Compares the reads of a `TreeStore` (the overlay, mid-batch) with the model.
fn same_view(model: &MemStore, view: &dyn TreeStore, sessions: &[i64]) {
    for path in model.nodes().keys() {
        assert_eq!(
            view.node(path).as_ref(),
            model.nodes().get(path),
            "node {path}"
        );
        assert_eq!(
            view.children(path),
            model.children(path),
            "children of {path}"
        );
    }
    for path in PATHS {
        assert_eq!(view.node(path), model.node(path), "node {path}");
        assert_eq!(
            view.children(path),
            model.children(path),
            "children of {path}"
        );
    }
    for &s in sessions {
        assert_eq!(
            view.ephemerals(s),
            model.ephemerals(s),
            "ephemerals of {s:#x}"
        );
        assert_eq!(view.session(s), model.session(s), "session {s:#x}");
    }
}

/// Compares the store's own reads (after batches were written) with the model.
fn same_store(model: &MemStore, store: &StateStore, sessions: &[i64]) {
    assert_eq!(store.node_count(), model.nodes().len() as u64, "node count");
    for (path, node) in model.nodes() {
        assert_eq!(
            store.node(path).unwrap().as_ref(),
            Some(node),
            "node {path}"
        );
        assert_eq!(
            store.children(path).unwrap(),
            model.children(path),
            "children of {path}"
        );
    }
    for path in PATHS {
        assert_eq!(store.node(path).unwrap(), model.node(path), "node {path}");
    }
    for &s in sessions {
        assert_eq!(
            store.ephemerals(s).unwrap(),
            model.ephemerals(s),
            "ephemerals of {s:#x}"
        );
        assert_eq!(
            store.session(s).unwrap(),
            model.session(s),
            "session {s:#x}"
        );
    }
    let sessions: Vec<(i64, Session)> = model.sessions().iter().map(|(k, v)| (*k, *v)).collect();
    let mut stored = store.sessions().unwrap();
    stored.sort_by_key(|(id, _)| *id);
    assert_eq!(stored, sessions);
}

/// Applies `steps` in batches of `batch_sizes` (cycled), comparing every read with the model;
/// after a batch, the store writes what apply left in memory when `writes` (cycled) says so,
/// so that the reads merge the DB with changes not yet written in every proportion.
fn run_case(steps: &[Step], batch_sizes: &[usize], writes: &[bool]) {
    let cmds = commands(steps);
    let sessions = session_ids(&cmds);
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let mut model = MemStore::default();
    init_system_nodes(&mut model);
    same_store(&model, &store, &sessions);

    let mut next = 0;
    let mut sizes = batch_sizes.iter().cycle();
    let mut writes = writes.iter().cycle();
    while next < cmds.len() {
        let n = (*sizes.next().unwrap()).min(cmds.len() - next);
        let batch = &cmds[next..next + n];
        let first_zxid = next as i64 + 1;
        let last = (first_zxid + n as i64 - 1).to_be_bytes();
        let delivered = AtomicUsize::new(0);
        let outcomes = store
            .apply_batch(
                &[(b"last_applied".as_slice(), last.as_slice())],
                |ts| {
                    let mut outcomes: Vec<Applied> = Vec::new();
                    for (i, cmd) in batch.iter().enumerate() {
                        let zxid = first_zxid + i as i64;
                        let want = apply(&mut model, zxid, cmd);
                        let got = apply(ts, zxid, cmd);
                        assert_eq!(got, want, "outcome of {cmd:?}");
                        same_view(&model, ts, &sessions);
                        outcomes.push(got);
                    }
                    outcomes
                },
                |outcomes| {
                    delivered.store(outcomes.len(), Ordering::Relaxed);
                },
            )
            .unwrap();
        assert_eq!(delivered.load(Ordering::Relaxed), outcomes.len());
        assert_eq!(
            store.get_meta(b"last_applied").unwrap(),
            Some(last.to_vec())
        );
        same_store(&model, &store, &sessions);
        if *writes.next().unwrap() {
            store.write_pending().unwrap();
            same_store(&model, &store, &sessions);
        }
        next += n;
    }

    drop(store);
    let store = StateStore::open(dir.path()).unwrap();
    same_store(&model, &store, &sessions);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn state_store_agrees_with_memstore(
        steps in prop::collection::vec(step(), 1..50),
        batch_sizes in prop::collection::vec(1..=5usize, 1..8),
        writes in prop::collection::vec(any::<bool>(), 1..6),
    ) {
        run_case(&steps, &batch_sizes, &writes);
    }
}

#[test]
fn new_store_has_the_system_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let mut model = MemStore::default();
    init_system_nodes(&mut model);
    same_store(&model, &store, &[]);
    assert_eq!(store.children("/").unwrap(), vec!["zookeeper".to_string()]);
    assert_eq!(
        store.children("/zookeeper").unwrap(),
        vec!["config".to_string(), "quota".to_string()]
    );
    assert_eq!(store.node_count(), 4);
}

#[test]
fn null_and_empty_data_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let steps = [
        Step::NewSession,
        Step::Create {
            session: 0,
            path: 0,
            flags: 0,
            data: 0,
            container: false,
        },
        Step::Create {
            session: 0,
            path: 1,
            flags: 0,
            data: 1,
            container: false,
        },
        Step::Create {
            session: 0,
            path: 2,
            flags: 0,
            data: 5,
            container: false,
        },
    ];
    let cmds = commands(&steps);
    {
        let store = StateStore::open(dir.path()).unwrap();
        store
            .apply_batch(
                &[],
                |ts| {
                    for (i, cmd) in cmds.iter().enumerate() {
                        apply(ts, i as i64 + 1, cmd);
                    }
                },
                |_| {},
            )
            .unwrap();
    }
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.node("/a").unwrap().unwrap().data, None);
    assert_eq!(store.node("/b").unwrap().unwrap().data, Some(Bytes::new()));
    assert_eq!(
        store.node("/a/x").unwrap().unwrap().data,
        Some(Bytes::from_static(&[5]))
    );
    assert_eq!(store.node_count(), 7);
}

#[test]
fn a_batch_is_invisible_to_gated_readers_until_after_ran() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(StateStore::open(dir.path()).unwrap());
    let cmds = commands(&[
        Step::NewSession,
        Step::Create {
            session: 0,
            path: 0,
            flags: 0,
            data: 2,
            container: false,
        },
    ]);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            rx.recv().unwrap();
            // `after` is running and holds the gate: this read must wait for it to finish.
            let _gate = store.read_gate();
            store.get_meta(b"delivered").unwrap()
        })
    };
    store
        .apply_batch(
            &[(b"delivered".as_slice(), b"no".as_slice())],
            |ts| {
                for (i, cmd) in cmds.iter().enumerate() {
                    apply(ts, i as i64 + 1, cmd);
                }
            },
            |_| {
                tx.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(100));
                // The batch is written before `after` runs.
                assert!(store.node("/a").unwrap().is_some());
            },
        )
        .unwrap();
    store
        .apply_batch(
            &[(b"delivered".as_slice(), b"yes".as_slice())],
            |_| {},
            |_| {},
        )
        .unwrap();
    // The reader got the gate only after the first `after` returned; whichever batch it saw,
    // it saw it whole (here: the first one's meta, or the second's).
    let seen = reader.join().unwrap().unwrap();
    assert!(seen == b"no" || seen == b"yes");
}

#[test]
fn reserved_meta_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let err = store
        .apply_batch(
            &[(b"zk-storage/node_count".as_slice(), b"x".as_slice())],
            |_| {},
            |_| {},
        )
        .unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
}

/// Applies `cmds` in one batch from zxid `first`, with `last_applied` as the batch's meta.
fn apply_in_one_batch(store: &StateStore, last_applied: &[u8], cmds: &[Command], first: i64) {
    store
        .apply_batch(
            &[(b"last_applied".as_slice(), last_applied)],
            |ts| {
                for (i, cmd) in cmds.iter().enumerate() {
                    apply(ts, i as i64 + first, cmd);
                }
            },
            |_| {},
        )
        .unwrap();
}

#[test]
fn checkpoint_is_a_complete_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&dir.path().join("db")).unwrap();
    let cmds = commands(&[
        Step::NewSession,
        Step::Create {
            session: 0,
            path: 0,
            flags: 1,
            data: 2,
            container: false,
        },
    ]);
    apply_in_one_batch(&store, b"2", &cmds, 1);
    let target = dir.path().join("snap");
    let meta = store
        .checkpoint(
            &target,
            &[b"last_applied".as_slice(), b"missing".as_slice()],
        )
        .unwrap();
    assert_eq!(meta, vec![Some(b"2".to_vec()), None]);
    assert!(
        store.checkpoint(&target, &[]).is_err(),
        "an existing target is refused"
    );
    let copy = StateStore::open_checkpoint(&target).unwrap();
    assert_eq!(copy.get_meta(b"last_applied").unwrap(), Some(b"2".to_vec()));
    assert_eq!(copy.node("/a").unwrap(), store.node("/a").unwrap());
    assert_eq!(
        copy.ephemerals(session_id_for(1, 1)).unwrap(),
        vec!["/a".to_string()]
    );
    assert_eq!(copy.node_count(), 5);
}

/// A checkpoint of one store installed into another replaces its whole tree (what a lagging
/// replica does with a snapshot from the leader): `after` runs with the new tree visible, a
/// reopen finds it, and only the live generation's directory remains.
#[test]
fn an_installed_checkpoint_replaces_the_tree_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let source = StateStore::open(&dir.path().join("source")).unwrap();
    let cmds = commands(&[
        Step::NewSession,
        Step::Create {
            session: 0,
            path: 0,
            flags: 1,
            data: 2,
            container: false,
        },
        Step::Create {
            session: 0,
            path: 1,
            flags: 0,
            data: 1,
            container: false,
        },
    ]);
    apply_in_one_batch(&source, b"3", &cmds, 1);
    let snap = dir.path().join("snap");
    source.checkpoint(&snap, &[]).unwrap();

    let root = dir.path().join("replica");
    let replica = StateStore::open(&root).unwrap();
    let other = commands(&[
        Step::NewSession,
        Step::Create {
            session: 0,
            path: 1,
            flags: 0,
            data: 0,
            container: false,
        },
    ]);
    apply_in_one_batch(&replica, b"9", &other, 100);
    assert_ne!(replica.node("/b").unwrap(), source.node("/b").unwrap());

    let mut seen = None;
    replica
        .install_checkpoint(&snap, |s| {
            seen = Some((s.get_meta(b"last_applied").unwrap(), s.node_count()));
        })
        .unwrap();
    assert_eq!(seen, Some((Some(b"3".to_vec()), source.node_count())));
    let check = |store: &StateStore| {
        for path in ["/a", "/b", "/zookeeper"] {
            assert_eq!(
                store.node(path).unwrap(),
                source.node(path).unwrap(),
                "{path}"
            );
        }
        assert_eq!(store.sessions().unwrap(), source.sessions().unwrap());
        assert_eq!(
            store.ephemerals(session_id_for(1, 1)).unwrap(),
            vec!["/a".to_string()]
        );
        assert_eq!(store.node_count(), source.node_count());
    };
    check(&replica);
    // Apply reads the installed tree, not what it remembers of the replaced one.
    let applied_view = replica
        .apply_batch(
            &[],
            |ts| (ts.node("/b"), ts.session(session_id_for(1, 1))),
            |_| {},
        )
        .unwrap();
    assert_eq!(
        applied_view,
        (
            source.node("/b").unwrap(),
            source.session(session_id_for(1, 1)).unwrap()
        )
    );
    drop(replica);
    let names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"gen-1".to_string()), "{names:?}");
    assert!(!names.contains(&"gen-0".to_string()), "{names:?}");
    let reopened = StateStore::open(&root).unwrap();
    check(&reopened);
    // The checkpoint itself is untouched and still opens as a store.
    drop(reopened);
    let snap_again = StateStore::open_checkpoint(&snap).unwrap();
    assert_eq!(snap_again.node("/a").unwrap(), source.node("/a").unwrap());
}

/// A generation directory left by a crash in the middle of an install is removed on open and
/// the live one is served.
#[test]
fn a_half_built_generation_is_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = StateStore::open(&root).unwrap();
    let count = store.node_count();
    drop(store);
    std::fs::create_dir_all(root.join("gen-1")).unwrap();
    std::fs::write(root.join("gen-1").join("000009.sst"), b"partial").unwrap();
    let store = StateStore::open(&root).unwrap();
    assert_eq!(store.node_count(), count);
    assert!(!root.join("gen-1").exists());
}
