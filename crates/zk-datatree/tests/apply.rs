//! The datatree rules, checked against what Apache ZooKeeper does (values measured on a real
//! server are cited where they came from).

use bytes::Bytes;
use zk_datatree::{
    Command, MemStore, Node, Op, Outcome, TreeStore, apply, init_system_nodes, session_id_for,
};
use zk_protocol::jute::data::{ACL, Id};
use zk_protocol::jute::proto::{CheckVersionRequest, CreateRequest, DeleteRequest, SetDataRequest};
use zk_protocol::multi::{MultiOp, MultiResult};
use zk_protocol::watch::EventType;
use zk_protocol::{ErrorCode, OpCode, Request};

struct Tree {
    store: MemStore,
    zxid: i64,
    session: i64,
    features: zk_datatree::Features,
}

fn open_acl() -> Option<Vec<ACL>> {
    Some(vec![ACL {
        perms: 31,
        id: Id {
            scheme: Some("world".into()),
            id: Some("anyone".into()),
        },
    }])
}

fn create_req(path: &str, flags: i32) -> CreateRequest {
    CreateRequest {
        path: Some(path.into()),
        data: Some(Bytes::from_static(b"d")),
        acl: open_acl(),
        flags,
    }
}

/// A persistent create of `path` holding `data`.
fn with_data(path: &str, data: &'static [u8]) -> Request {
    Request::Create(
        OpCode::Create,
        CreateRequest {
            path: Some(path.into()),
            data: Some(Bytes::from_static(data)),
            acl: open_acl(),
            flags: 0,
        },
    )
}

impl Tree {
    fn new() -> Self {
        let mut t = Tree {
            store: MemStore::default(),
            zxid: 0,
            session: 0,
            features: zk_datatree::Features::default(),
        };
        init_system_nodes(&mut t.store);
        t.session = t.new_session();
        t
    }

    fn run(&mut self, session: i64, op: Op) -> zk_datatree::Applied {
        self.zxid += 1;
        apply(
            &mut self.store,
            self.zxid,
            &Command {
                time_ms: 1_000 + self.zxid,
                xid: 1,
                auth: Default::default(),
                features: self.features,
                session_id: session,
                op,
            },
        )
    }

    fn new_session(&mut self) -> i64 {
        match self
            .run(
                0,
                Op::CreateSession {
                    timeout_ms: 30_000,
                    server_id: 1,
                },
            )
            .outcome
        {
            Outcome::SessionCreated { session_id } => session_id,
            other => panic!("{other:?}"),
        }
    }

    fn req(&mut self, r: Request) -> Outcome {
        let s = self.session;
        self.run(s, Op::Request(r)).outcome
    }

    fn create(&mut self, path: &str, flags: i32) -> Outcome {
        self.req(Request::Create(OpCode::Create, create_req(path, flags)))
    }

    fn delete(&mut self, path: &str, version: i32) -> Outcome {
        self.req(Request::Delete(DeleteRequest {
            path: Some(path.into()),
            version,
        }))
    }

    fn node(&self, path: &str) -> Node {
        self.store
            .node(path)
            .unwrap_or_else(|| panic!("{path} missing"))
    }
}

fn created_path(o: Outcome) -> String {
    match o {
        Outcome::Created { path, .. } => path,
        other => panic!("{other:?}"),
    }
}

#[test]
fn system_nodes_have_zookeepers_stat_quirks() {
    let t = Tree::new();
    assert_eq!(t.node("/zookeeper").stat().cversion, -2);
    assert_eq!(t.node("/zookeeper").stat().num_children, 2);
    assert_eq!(t.node("/").stat().cversion, -1);
    assert_eq!(t.node("/").czxid, 0);
    assert_eq!(t.store.children("/zookeeper"), vec!["config", "quota"]);
}

/// Measured on Apache ZooKeeper: create, create, delete one, create → suffixes 0000000000,
/// 0000000001, 0000000002; the parent's cversion is then 4.
#[test]
fn sequential_suffix_counts_creates_and_cversion_counts_changes() {
    let mut t = Tree::new();
    t.create("/q", 0);
    assert_eq!(created_path(t.create("/q/n-", 2)), "/q/n-0000000000");
    assert_eq!(created_path(t.create("/q/n-", 2)), "/q/n-0000000001");
    assert_eq!(t.delete("/q/n-0000000000", -1), Outcome::Deleted);
    assert_eq!(created_path(t.create("/q/n-", 2)), "/q/n-0000000002");
    let stat = t.node("/q").stat();
    assert_eq!(stat.cversion, 4);
    assert_eq!(stat.num_children, 2);
    // A trailing slash is fine for a sequential create: the name is the suffix alone.
    assert_eq!(created_path(t.create("/q/", 2)), "/q/0000000003");
}

#[test]
fn stat_fields_follow_the_writes() {
    let mut t = Tree::new();
    let Outcome::Created { stat, .. } =
        t.req(Request::Create(OpCode::Create2, create_req("/a", 0)))
    else {
        panic!()
    };
    let z = t.zxid;
    assert_eq!((stat.czxid, stat.mzxid, stat.pzxid), (z, z, z));
    assert_eq!((stat.ctime, stat.mtime), (1_000 + z, 1_000 + z));
    assert_eq!(
        (stat.version, stat.cversion, stat.aversion, stat.data_length),
        (0, 0, 0, 1)
    );
    let set = t.req(Request::SetData(SetDataRequest {
        path: Some("/a".into()),
        data: None,
        version: 0,
    }));
    let Outcome::DataSet(stat) = set else {
        panic!("{set:?}")
    };
    assert_eq!(
        (stat.version, stat.mzxid, stat.czxid, stat.data_length),
        (1, t.zxid, z, 0)
    );
    assert_eq!(t.node("/a").data, None, "null data stays null");
    let before = t.node("/").pzxid;
    t.create("/a/b", 0);
    assert_eq!(t.node("/a").pzxid, t.zxid);
    assert_eq!(
        t.node("/a").mzxid,
        stat.mzxid,
        "a child create is not a data change"
    );
    assert_eq!(t.node("/").pzxid, before);
}

#[test]
fn errors_come_in_zookeepers_order() {
    let mut t = Tree::new();
    // §8b, measured: create "rel" → BADARGUMENTS; "/a//b", "/a/", "/zz/.." → NONODE.
    assert_eq!(t.create("rel", 0), Outcome::Error(ErrorCode::BadArguments));
    assert_eq!(t.create("/a//b", 0), Outcome::Error(ErrorCode::NoNode));
    assert_eq!(t.create("/a/", 0), Outcome::Error(ErrorCode::NoNode));
    assert_eq!(t.create("/zz/..", 0), Outcome::Error(ErrorCode::NoNode));
    assert_eq!(
        t.create("/a\0b", 0),
        Outcome::Error(ErrorCode::BadArguments)
    );
    t.create("/a", 0);
    assert_eq!(t.create("/a/", 0), Outcome::Error(ErrorCode::BadArguments));
    assert_eq!(t.create("/a", 0), Outcome::Error(ErrorCode::NodeExists));
    assert_eq!(t.create("/", 0), Outcome::Error(ErrorCode::NodeExists));
    assert_eq!(t.create("/a/x", 9), Outcome::Error(ErrorCode::BadArguments));
    assert_eq!(
        t.create("/a/x", 5),
        Outcome::Error(ErrorCode::Unimplemented)
    );
    let mut no_acl = create_req("/a/x", 0);
    no_acl.acl = Some(vec![]);
    assert_eq!(
        t.req(Request::Create(OpCode::Create, no_acl)),
        Outcome::Error(ErrorCode::InvalidAcl)
    );
    t.create("/e", 1);
    assert_eq!(
        t.create("/e/c", 0),
        Outcome::Error(ErrorCode::NoChildrenForEphemerals)
    );
    assert_eq!(t.delete("/a", 5), Outcome::Error(ErrorCode::BadVersion));
    t.create("/a/x", 0);
    assert_eq!(t.delete("/a", 0), Outcome::Error(ErrorCode::NotEmpty));
    assert_eq!(t.delete("/nope", 0), Outcome::Error(ErrorCode::NoNode));
    for special in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(
            t.delete(special, -1),
            Outcome::Error(ErrorCode::BadArguments),
            "{special}"
        );
    }
    let stale = t.run(
        0x7777,
        Op::Request(Request::Delete(DeleteRequest {
            path: Some("/a/x".into()),
            version: -1,
        })),
    );
    assert_eq!(stale.outcome, Outcome::Error(ErrorCode::SessionExpired));
}

#[test]
fn multi_is_all_or_nothing_with_zookeepers_results() {
    let mut t = Tree::new();
    t.create("/m", 0);
    let before = t.store.clone();
    let ops = vec![
        MultiOp::Create(OpCode::Create, create_req("/m/a", 0)),
        MultiOp::Check(CheckVersionRequest {
            path: Some("/m".into()),
            version: 7,
        }),
        MultiOp::Delete(DeleteRequest {
            path: Some("/m".into()),
            version: -1,
        }),
    ];
    let applied = t.run(t.session, Op::Request(Request::Multi(ops)));
    assert_eq!(
        applied.outcome,
        Outcome::Multi(vec![
            MultiResult::Error(0),
            MultiResult::Error(ErrorCode::BadVersion.code()),
            MultiResult::Error(ErrorCode::RuntimeInconsistency.code()),
        ])
    );
    assert!(applied.triggers.is_empty());
    assert_eq!(t.store, before, "a failed multi changes nothing");

    let ops = vec![
        MultiOp::Create(OpCode::Create2, create_req("/m/a", 0)),
        MultiOp::Create(OpCode::Create, create_req("/m/c", 4)),
        MultiOp::SetData(SetDataRequest {
            path: Some("/m/a".into()),
            data: None,
            version: 0,
        }),
        MultiOp::Check(CheckVersionRequest {
            path: Some("/m/a".into()),
            version: 1,
        }),
        MultiOp::Delete(DeleteRequest {
            path: Some("/m/a".into()),
            version: 1,
        }),
    ];
    let applied = t.run(t.session, Op::Request(Request::Multi(ops)));
    let Outcome::Multi(results) = applied.outcome else {
        panic!()
    };
    assert!(
        matches!(&results[0], MultiResult::Create2(p, s) if p == "/m/a" && s.version == 0),
        "create2 in a multi answers with the Stat (measured on 3.9.5)"
    );
    assert!(
        matches!(&results[1], MultiResult::Create2(p, s) if p == "/m/c" && s.ephemeral_owner == 0)
    );
    assert!(matches!(&results[2], MultiResult::SetData(s) if s.version == 1));
    assert_eq!(&results[3..], &[MultiResult::Check, MultiResult::Delete]);
    assert!(t.store.node("/m/a").is_none());
    assert_eq!(t.node("/m").stat().cversion, 2 * 2 - 1);
}

#[test]
fn closing_a_session_deletes_its_ephemerals_and_fires_their_watches() {
    let mut t = Tree::new();
    t.create("/s", 0);
    let other = t.new_session();
    t.create("/s/mine", 1);
    let theirs = t.run(
        other,
        Op::Request(Request::Create(OpCode::Create, create_req("/s/theirs", 3))),
    );
    let theirs = created_path(theirs.outcome);
    assert_eq!(t.node("/s/mine").ephemeral_owner, t.session);
    let closed = t.run(other, Op::CloseSession);
    assert_eq!(closed.outcome, Outcome::SessionClosed);
    assert_eq!(closed.triggers.len(), 2);
    assert_eq!(closed.triggers[0].path, theirs);
    assert_eq!(closed.triggers[0].event, EventType::NodeDeleted);
    assert_eq!(closed.triggers[1].event, EventType::NodeChildrenChanged);
    assert!(t.store.node(&theirs).is_none());
    assert!(t.store.node("/s/mine").is_some());
    assert_eq!(t.node("/s").pzxid, t.zxid);
    assert_eq!(
        t.run(other, Op::CloseSession).outcome,
        Outcome::Error(ErrorCode::SessionExpired)
    );
}

#[test]
fn session_ids_carry_the_server_id_and_never_look_special() {
    let id = session_id_for(5, 1);
    assert_eq!(id, 0x0100_0000_0000_0005);
    // The high byte is the server id (ZooKeeper's ids for servers >= 128 are negative too);
    // it is never 0xff (TTL owners) and the id is never Long.MIN_VALUE (containers).
    let high = session_id_for(i64::MAX, 254);
    assert_eq!((high >> 56) & 0xff, 254);
    assert_ne!(high, i64::MIN);
}

#[test]
fn acls_are_fixed_up_checked_and_versioned() {
    use zk_datatree::AuthId;
    use zk_protocol::jute::proto::SetACLRequest;
    let mut t = Tree::new();
    let alice = vec![
        AuthId::new("ip", "127.0.0.1"),
        AuthId::new("digest", "alice:hash"),
    ];
    let as_alice = |t: &mut Tree, r: Request| {
        t.zxid += 1;
        apply(
            &mut t.store,
            t.zxid,
            &Command {
                time_ms: 1,
                session_id: t.session,
                xid: 1,
                auth: alice.clone().into(),
                features: zk_datatree::Features::default(),
                op: Op::Request(r),
            },
        )
        .outcome
    };
    // "auth" becomes the connection's digest id; ip does not count.
    let mut req = create_req("/private", 0);
    req.acl = Some(vec![ACL {
        perms: 31,
        id: Id {
            scheme: Some("auth".into()),
            id: Some(String::new()),
        },
    }]);
    assert!(matches!(
        as_alice(&mut t, Request::Create(OpCode::Create, req.clone())),
        Outcome::Created { .. }
    ));
    assert_eq!(
        t.node("/private").acl[0].id.id.as_deref(),
        Some("alice:hash")
    );
    req.path = Some("/other".into());
    assert_eq!(
        t.req(Request::Create(OpCode::Create, req)),
        Outcome::Error(ErrorCode::InvalidAcl)
    );

    // Others may not create below it, write it or change its ACL.
    assert_eq!(t.create("/private/x", 0), Outcome::Error(ErrorCode::NoAuth));
    let set = |version| {
        Request::SetAcl(SetACLRequest {
            path: Some("/private".into()),
            acl: open_acl(),
            version,
        })
    };
    assert_eq!(t.req(set(-1)), Outcome::Error(ErrorCode::NoAuth));
    // Alice may, with the right ACL version.
    assert_eq!(
        as_alice(&mut t, set(3)),
        Outcome::Error(ErrorCode::BadVersion)
    );
    let Outcome::AclSet(stat) = as_alice(&mut t, set(0)) else {
        panic!()
    };
    assert_eq!((stat.aversion, stat.version), (1, 0));
    assert!(matches!(t.create("/private/x", 0), Outcome::Created { .. }));
}

#[test]
fn ttl_nodes_need_extended_types_and_a_valid_ttl() {
    use zk_protocol::jute::proto::CreateTTLRequest;
    let mut t = Tree::new();
    let ttl_req = |flags, ttl| {
        Request::CreateTtl(CreateTTLRequest {
            path: Some("/t".into()),
            data: None,
            acl: open_acl(),
            flags,
            ttl,
        })
    };
    let run = |t: &mut Tree, r: Request, extended_types: bool| {
        t.zxid += 1;
        let cmd = Command {
            time_ms: 5_000,
            session_id: t.session,
            xid: 1,
            auth: Default::default(),
            features: zk_datatree::Features {
                extended_types,
                ..Default::default()
            },
            op: Op::Request(r),
        };
        apply(&mut t.store, t.zxid, &cmd).outcome
    };
    assert_eq!(
        run(&mut t, ttl_req(5, 100), false),
        Outcome::Error(ErrorCode::Unimplemented)
    );
    assert_eq!(
        run(&mut t, ttl_req(5, 0), true),
        Outcome::Error(ErrorCode::BadArguments)
    );
    assert_eq!(
        run(&mut t, ttl_req(0, 100), true),
        Outcome::Error(ErrorCode::BadArguments)
    );
    assert_eq!(t.create("/t", 5), Outcome::Error(ErrorCode::Unimplemented));
    let Outcome::Created { stat, .. } = run(&mut t, ttl_req(5, 100), true) else {
        panic!()
    };
    assert_eq!(
        stat.ephemeral_owner, 0,
        "clients see 0 for TTL nodes (measured on 3.9.5)"
    );
    let node = t.node("/t");
    assert_eq!(node.ephemeral_owner as u64, 0xFF00_0000_0000_0064);
    assert!(!zk_datatree::reapable(&node, 5_050), "younger than its TTL");
    assert!(zk_datatree::reapable(&node, 5_101));
    t.create("/t/child", 0);
    assert!(
        !zk_datatree::reapable(&t.node("/t"), 9_999),
        "TTL nodes may have children, and then stay"
    );
}

#[test]
fn containers_are_reaped_once_they_had_children_and_have_none() {
    let mut t = Tree::new();
    let c = t.req(Request::Create(
        OpCode::CreateContainer,
        create_req("/c", 4),
    ));
    assert!(matches!(c, Outcome::Created { stat, .. } if stat.ephemeral_owner == 0));
    assert_eq!(t.node("/c").ephemeral_owner, i64::MIN);
    let reap = |t: &mut Tree| {
        t.zxid += 1;
        let cmd = Command {
            time_ms: 9,
            session_id: 0,
            xid: 0,
            auth: Default::default(),
            features: zk_datatree::Features::default(),
            op: Op::Reap { path: "/c".into() },
        };
        apply(&mut t.store, t.zxid, &cmd)
    };
    assert_eq!(
        reap(&mut t).outcome,
        Outcome::Error(ErrorCode::BadVersion),
        "never had children"
    );
    t.create("/c/x", 0);
    assert_eq!(reap(&mut t).outcome, Outcome::Error(ErrorCode::NotEmpty));
    t.delete("/c/x", -1);
    let reaped = reap(&mut t);
    assert_eq!(reaped.outcome, Outcome::Deleted);
    assert_eq!(reaped.triggers[0].event, EventType::NodeDeleted);
    assert!(t.store.node("/c").is_none());
    assert_eq!(
        t.store.ephemerals(i64::MIN),
        Vec::<String>::new(),
        "the container index follows"
    );
}

#[test]
fn reconfig_is_refused_as_zookeeper_refuses_it() {
    use zk_datatree::{AuthId, Features};
    use zk_protocol::jute::proto::ReconfigRequest;
    let mut t = Tree::new();
    let mut run = |enabled: bool, auth: Vec<AuthId>| {
        t.zxid += 1;
        let cmd = Command {
            time_ms: 1,
            session_id: t.session,
            xid: 1,
            auth: auth.into(),
            features: Features {
                reconfig_enabled: enabled,
                ..Default::default()
            },
            op: Op::Request(Request::Reconfig(ReconfigRequest::default())),
        };
        apply(&mut t.store, t.zxid, &cmd).outcome
    };
    assert_eq!(
        run(false, vec![]),
        Outcome::Error(ErrorCode::ReconfigDisabled)
    );
    // A standalone server: UNIMPLEMENTED before any ACL check, super or not.
    assert_eq!(
        run(true, vec![AuthId::new("ip", "127.0.0.1")]),
        Outcome::Error(ErrorCode::Unimplemented)
    );
    assert_eq!(
        run(true, vec![AuthId::new("super", "")]),
        Outcome::Error(ErrorCode::Unimplemented)
    );
}

#[test]
fn an_ensembles_reconfig_rewrites_the_config_node() {
    let mut t = Tree::new();
    let mut run = |result: Result<String, ErrorCode>| {
        t.zxid += 1;
        let cmd = Command {
            time_ms: 77,
            ..Command::internal(t.session, 5, Op::Configure(result))
        };
        apply(&mut t.store, t.zxid, &cmd)
    };
    let applied = run(Ok("server.1=h:1:2:participant;0.0.0.0:3\n".into()));
    let Outcome::Configured { data, stat } = &applied.outcome else {
        panic!("{applied:?}");
    };
    let zxid = stat.mzxid;
    assert_eq!(
        &data[..],
        format!("server.1=h:1:2:participant;0.0.0.0:3\nversion={zxid:x}").as_bytes()
    );
    assert_eq!((stat.version, stat.aversion, stat.mtime), (-1, -1, 77));
    assert_eq!(applied.triggers.len(), 1);
    assert_eq!(applied.triggers[0].path, "/zookeeper/config");
    assert_eq!(applied.triggers[0].event, EventType::NodeDataChanged);
    let failed = run(Err(ErrorCode::NewConfigNoQuorum));
    assert_eq!(failed.outcome, Outcome::Error(ErrorCode::NewConfigNoQuorum));
    assert!(failed.triggers.is_empty());
}

#[test]
fn quota_stats_follow_the_subtree() {
    let mut t = Tree::new();
    t.req(with_data("/q", b"abc"));
    t.req(with_data("/q/a", b"12345"));
    // What zkCli's setquota creates.
    t.req(with_data("/zookeeper/quota/q", b""));
    t.req(with_data(
        "/zookeeper/quota/q/zookeeper_limits",
        b"count=10,bytes=-1",
    ));
    t.req(with_data(
        "/zookeeper/quota/q/zookeeper_stats",
        b"count=0,bytes=0",
    ));
    let stats = |t: &Tree| t.node("/zookeeper/quota/q/zookeeper_stats");
    assert_eq!(stats(&t).data.as_deref(), Some(&b"count=2,bytes=8"[..]));
    let version = stats(&t).version;
    t.req(with_data("/q/b", b"xy"));
    assert_eq!(stats(&t).data.as_deref(), Some(&b"count=3,bytes=10"[..]));
    t.req(Request::SetData(SetDataRequest {
        path: Some("/q/a".into()),
        data: Some(Bytes::from_static(b"1")),
        version: -1,
    }));
    assert_eq!(stats(&t).data.as_deref(), Some(&b"count=3,bytes=6"[..]));
    t.delete("/q/b", -1);
    assert_eq!(stats(&t).data.as_deref(), Some(&b"count=2,bytes=4"[..]));
    assert_eq!(
        stats(&t).version,
        version,
        "updated in place, as ZooKeeper does"
    );
    t.req(with_data("/other", b"zz"));
    assert_eq!(
        stats(&t).data.as_deref(),
        Some(&b"count=2,bytes=4"[..]),
        "outside the quota"
    );
}

#[test]
fn quota_hard_limits_are_enforced_when_enabled() {
    let set = |path: &str, data: &'static [u8]| {
        Request::SetData(SetDataRequest {
            path: Some(path.into()),
            data: Some(Bytes::from_static(data)),
            version: -1,
        })
    };
    // zkCli `setquota -N 3 -B 10 /q` plus a soft count limit of 1 on /s: what it writes.
    let setup = |enforce: bool| {
        let mut t = Tree::new();
        t.features.enforce_quota = enforce;
        t.req(with_data("/q", b"abc"));
        t.req(with_data("/s", b""));
        t.req(with_data("/zookeeper/quota/q", b""));
        t.req(with_data(
            "/zookeeper/quota/q/zookeeper_limits",
            b"count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=3",
        ));
        t.req(with_data(
            "/zookeeper/quota/q/zookeeper_stats",
            b"count=0,bytes=0",
        ));
        t.req(with_data("/zookeeper/quota/s", b""));
        t.req(with_data(
            "/zookeeper/quota/s/zookeeper_limits",
            b"count=1,bytes=-1",
        ));
        t.req(with_data(
            "/zookeeper/quota/s/zookeeper_stats",
            b"count=0,bytes=0",
        ));
        t
    };
    let mut t = setup(true);
    assert!(matches!(
        t.req(with_data("/q/a", b"1234")),
        Outcome::Created { .. }
    ));
    // count 3 is the limit: a third node fits, the fourth does not.
    assert!(matches!(
        t.req(with_data("/q/b", b"")),
        Outcome::Created { .. }
    ));
    assert_eq!(
        t.req(with_data("/q/c", b"")),
        Outcome::Error(ErrorCode::QuotaExceeded)
    );
    let stats = |t: &Tree| t.node("/zookeeper/quota/q/zookeeper_stats").data;
    assert_eq!(stats(&t).as_deref(), Some(&b"count=3,bytes=7"[..]));
    // bytes: 7 of 10 used; growing /q/a by 3 fits, by 4 does not; shrinking always does.
    assert_eq!(
        t.req(set("/q/a", b"12345678")),
        Outcome::Error(ErrorCode::QuotaExceeded)
    );
    assert!(matches!(
        t.req(set("/q/a", b"1234567")),
        Outcome::DataSet(_)
    ));
    assert!(matches!(t.req(set("/q/a", b"")), Outcome::DataSet(_)));
    // The quota check comes before the version check, as in PrepRequestProcessor.
    t.req(set("/q/a", b"1234567"));
    assert_eq!(
        t.req(Request::SetData(SetDataRequest {
            path: Some("/q/a".into()),
            data: Some(Bytes::from_static(b"12345678901")),
            version: 99,
        })),
        Outcome::Error(ErrorCode::QuotaExceeded)
    );
    // A multi with an op beyond the quota fails as a whole.
    t.delete("/q/b", -1);
    let multi = t.req(Request::Multi(vec![
        MultiOp::Delete(DeleteRequest {
            path: Some("/q/a".into()),
            version: -1,
        }),
        MultiOp::Create(
            OpCode::Create,
            CreateRequest {
                path: Some("/q/x".into()),
                data: Some(Bytes::from_static(b"0123456789ab")),
                acl: open_acl(),
                flags: 0,
            },
        ),
    ]));
    assert!(
        matches!(&multi, Outcome::Multi(r) if matches!(r[1], MultiResult::Error(c) if c == ErrorCode::QuotaExceeded.code())),
        "{multi:?}"
    );
    assert!(t.store.node("/q/a").is_some(), "the multi was rolled back");
    // Soft limits are only logged by ZooKeeper.
    assert!(matches!(
        t.req(with_data("/s/a", b"")),
        Outcome::Created { .. }
    ));
    assert!(matches!(
        t.req(with_data("/s/b", b"")),
        Outcome::Created { .. }
    ));

    // Not enforced unless enabled (zookeeper.enforceQuota defaults to false).
    let mut t = setup(false);
    for p in ["/q/a", "/q/b", "/q/c", "/q/d"] {
        assert!(matches!(
            t.req(with_data(p, b"0123456789")),
            Outcome::Created { .. }
        ));
    }
    assert_eq!(stats(&t).as_deref(), Some(&b"count=5,bytes=43"[..]));
}
