//! Model-based test: random operation sequences applied to the datatree and to a naive model
//! of ZooKeeper's rules must agree on every outcome and on the final tree; and the same log
//! applied to two fresh trees gives the same tree.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use zk_datatree::{Command, MemStore, Op, Outcome, TreeStore, apply, init_system_nodes};
use zk_protocol::jute::data::{ACL, Id};
use zk_protocol::jute::proto::{CreateRequest, DeleteRequest, SetDataRequest};
use zk_protocol::{ErrorCode, OpCode, Request};

const PATHS: [&str; 6] = ["/a", "/b", "/a/x", "/a/y", "/b/x", "/a/x/z"];

#[derive(Clone, Debug)]
enum Step {
    Create {
        path: usize,
        flags: i32,
        session: usize,
    },
    Delete {
        path: usize,
        version: i32,
    },
    SetData {
        path: usize,
        version: i32,
        data: u8,
    },
    Close {
        session: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..PATHS.len(), 0..4i32, 0..2usize).prop_map(|(path, flags, session)| Step::Create {
            path,
            flags,
            session
        }),
        (0..PATHS.len(), -1..2i32).prop_map(|(path, version)| Step::Delete { path, version }),
        (0..PATHS.len(), -1..2i32, any::<u8>()).prop_map(|(path, version, data)| Step::SetData {
            path,
            version,
            data
        }),
        (0..2usize).prop_map(|session| Step::Close { session }),
    ]
}

/// The naive model: a map from path to (version, data, owner, child creates).
#[derive(Default)]
struct Model {
    nodes: BTreeMap<String, (i32, u8, i64, i32)>,
    root_creates: i32,
    live: [bool; 2],
}

fn parent(p: &str) -> String {
    match p.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => p[..i].into(),
        None => unreachable!(),
    }
}

impl Model {
    fn exists(&self, p: &str) -> bool {
        p == "/" || self.nodes.contains_key(p)
    }
    fn has_children(&self, p: &str) -> bool {
        self.nodes.keys().any(|k| k != p && parent(k) == p)
    }
    /// Returns the expected error, or the created name, for each step.
    fn step(&mut self, s: &Step, sessions: [i64; 2]) -> Result<Option<String>, ErrorCode> {
        match *s {
            Step::Create {
                path,
                flags,
                session,
            } => {
                if !self.live[session] {
                    return Err(ErrorCode::SessionExpired);
                }
                let p = PATHS[path];
                let par = parent(p);
                if !self.exists(&par) {
                    return Err(ErrorCode::NoNode);
                }
                let name = if flags & 2 != 0 {
                    let creates = self.nodes.get(&par).map_or(self.root_creates, |n| n.3);
                    format!("{p}{creates:010}")
                } else {
                    p.to_string()
                };
                if self.exists(&name) {
                    return Err(ErrorCode::NodeExists);
                }
                if self.nodes.get(&par).is_some_and(|n| n.2 != 0) {
                    return Err(ErrorCode::NoChildrenForEphemerals);
                }
                match self.nodes.get_mut(&par) {
                    Some(n) => n.3 += 1,
                    None => self.root_creates += 1,
                }
                let owner = if flags & 1 != 0 { sessions[session] } else { 0 };
                self.nodes.insert(name.clone(), (0, 0, owner, 0));
                Ok(Some(name))
            }
            Step::Delete { path, version } => {
                let p = PATHS[path];
                let n = *self.nodes.get(p).ok_or(ErrorCode::NoNode)?;
                if version != -1 && version != n.0 {
                    return Err(ErrorCode::BadVersion);
                }
                if self.has_children(p) {
                    return Err(ErrorCode::NotEmpty);
                }
                self.nodes.remove(p);
                Ok(None)
            }
            Step::SetData {
                path,
                version,
                data,
            } => {
                let n = self.nodes.get_mut(PATHS[path]).ok_or(ErrorCode::NoNode)?;
                if version != -1 && version != n.0 {
                    return Err(ErrorCode::BadVersion);
                }
                n.0 += 1;
                n.1 = data;
                Ok(None)
            }
            Step::Close { session } => {
                if !self.live[session] {
                    return Err(ErrorCode::SessionExpired);
                }
                self.live[session] = false;
                let sid = sessions[session];
                self.nodes.retain(|_, n| n.2 != sid);
                Ok(None)
            }
        }
    }
}

fn acl() -> Option<Vec<ACL>> {
    Some(vec![ACL {
        perms: 31,
        id: Id {
            scheme: Some("world".into()),
            id: Some("anyone".into()),
        },
    }])
}

fn to_command(s: &Step, sessions: [i64; 2], live_session: i64) -> Command {
    let (session_id, op) = match *s {
        Step::Create {
            path,
            flags,
            session,
        } => (
            sessions[session],
            Op::Request(Request::Create(
                OpCode::Create,
                CreateRequest {
                    path: Some(PATHS[path].into()),
                    data: None,
                    acl: acl(),
                    flags,
                },
            )),
        ),
        Step::Delete { path, version } => (
            live_session,
            Op::Request(Request::Delete(DeleteRequest {
                path: Some(PATHS[path].into()),
                version,
            })),
        ),
        Step::SetData {
            path,
            version,
            data,
        } => (
            live_session,
            Op::Request(Request::SetData(SetDataRequest {
                path: Some(PATHS[path].into()),
                data: Some(Bytes::from(vec![data])),
                version,
            })),
        ),
        Step::Close { session } => (sessions[session], Op::CloseSession),
    };
    Command {
        time_ms: 7,
        session_id,
        xid: 1,
        auth: Default::default(),
        features: zk_datatree::Features::default(),
        op,
    }
}

fn run(steps: &[Step]) -> (MemStore, Vec<Outcome>) {
    let mut store = MemStore::default();
    init_system_nodes(&mut store);
    let mut outcomes = Vec::new();
    let mut zxid = 0;
    let mut sessions = [0; 2];
    // Session 2 never closes: it performs the deletes and setData steps.
    for s in sessions.iter_mut().chain([&mut 0]) {
        zxid += 1;
        let cmd = Command {
            time_ms: 7,
            session_id: 0,
            xid: 0,
            auth: Default::default(),
            features: zk_datatree::Features::default(),
            op: Op::CreateSession {
                timeout_ms: 1,
                server_id: 1,
            },
        };
        if let Outcome::SessionCreated { session_id } = apply(&mut store, zxid, &cmd).outcome {
            *s = session_id;
        }
    }
    let live = zk_datatree::session_id_for(3, 1);
    for s in steps {
        zxid += 1;
        outcomes.push(apply(&mut store, zxid, &to_command(s, sessions, live)).outcome);
    }
    (store, outcomes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn datatree_agrees_with_the_model(steps in proptest::collection::vec(step(), 1..60)) {
        let (store, outcomes) = run(&steps);
        let mut model = Model { live: [true, true], ..Model::default() };
        let sessions = [zk_datatree::session_id_for(1, 1), zk_datatree::session_id_for(2, 1)];
        for (s, got) in steps.iter().zip(&outcomes) {
            match (model.step(s, sessions), got) {
                (Err(code), Outcome::Error(c)) => prop_assert_eq!(code, *c, "{:?}", s),
                (Ok(Some(name)), Outcome::Created { path, .. }) => prop_assert_eq!(&name, path),
                (Ok(None), Outcome::Deleted | Outcome::DataSet(_) | Outcome::SessionClosed) => {}
                (want, got) => prop_assert!(false, "{:?}: model {:?}, tree {:?}", s, want, got),
            }
        }
        // Same nodes, versions, data and owners; cversion = 2 x creates - children.
        for (path, (version, data, owner, creates)) in &model.nodes {
            let node = store.node(path).expect("model node in tree");
            prop_assert_eq!(node.version, *version);
            prop_assert_eq!(node.ephemeral_owner, *owner);
            prop_assert_eq!(node.cversion, *creates);
            if *version > 0 {
                prop_assert_eq!(node.data.as_deref(), Some(&[*data][..]));
            }
            prop_assert_eq!(node.num_children as usize, store.children(path).len());
        }
        let user_nodes = store.nodes().keys().filter(|k| *k != "/" && !k.starts_with("/zookeeper")).count();
        prop_assert_eq!(user_nodes, model.nodes.len());

        // Determinism: the same log gives the same tree.
        let (again, outcomes_again) = run(&steps);
        prop_assert_eq!(&again, &store);
        prop_assert_eq!(outcomes_again, outcomes);
    }
}
