//! apply() over the in-memory store: the state machine's own cost per write, without storage
//! or consensus. The tree holds 10 000 znodes of 100 bytes under /bench before measuring.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use zk_datatree::{Command, Features, MemStore, Op, Outcome, apply, init_system_nodes};
use zk_protocol::jute::data::{ACL, Id};
use zk_protocol::jute::proto::{CreateRequest, DeleteRequest, SetDataRequest};
use zk_protocol::{OpCode, Request};

const NODES: usize = 10_000;

fn command(session_id: i64, op: Op) -> Command {
    Command {
        time_ms: 1_764_000_000_000,
        session_id,
        xid: 1,
        auth: Default::default(),
        features: Features::default(),
        op,
    }
}

fn create(path: String) -> Op {
    Op::Request(Request::Create(
        OpCode::Create,
        CreateRequest {
            path: Some(path),
            data: Some(Bytes::from(vec![b'x'; 100])),
            acl: Some(vec![ACL {
                perms: 31,
                id: Id {
                    scheme: Some("world".into()),
                    id: Some("anyone".into()),
                },
            }]),
            flags: 0,
        },
    ))
}

/// A tree with a session and NODES children of /bench; returns it with the next zxid.
fn tree() -> (MemStore, i64, i64) {
    let mut store = MemStore::default();
    init_system_nodes(&mut store);
    let mut zxid = 1;
    let session = match apply(
        &mut store,
        zxid,
        &command(
            0,
            Op::CreateSession {
                timeout_ms: 30_000,
                server_id: 1,
            },
        ),
    )
    .outcome
    {
        Outcome::SessionCreated { session_id } => session_id,
        other => panic!("{other:?}"),
    };
    zxid += 1;
    apply(&mut store, zxid, &command(session, create("/bench".into())));
    for i in 0..NODES {
        zxid += 1;
        let cmd = command(session, create(format!("/bench/n{i:06}")));
        assert!(matches!(
            apply(&mut store, zxid, &cmd).outcome,
            Outcome::Created { .. }
        ));
    }
    (store, session, zxid + 1)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(1));
    let (mut store, session, mut zxid) = tree();
    let set = command(
        session,
        Op::Request(Request::SetData(SetDataRequest {
            path: Some("/bench/n004242".into()),
            data: Some(Bytes::from(vec![b'y'; 100])),
            version: -1,
        })),
    );
    g.bench_function("setData 100 B (10k-node tree)", |b| {
        b.iter(|| {
            zxid += 1;
            black_box(apply(&mut store, zxid, black_box(&set)))
        })
    });
    let fail = command(
        session,
        Op::Request(Request::SetData(SetDataRequest {
            path: Some("/bench/n004242".into()),
            data: None,
            version: 1_000_000,
        })),
    );
    g.bench_function("setData with a wrong version (BADVERSION)", |b| {
        b.iter(|| {
            zxid += 1;
            black_box(apply(&mut store, zxid, black_box(&fail)))
        })
    });
    let mut i = 0u64;
    g.bench_function("create+delete 100 B (10k-node tree)", |b| {
        b.iter_batched(
            || {
                i += 1;
                let path = format!("/bench/tmp{i}");
                (
                    command(session, create(path.clone())),
                    command(
                        session,
                        Op::Request(Request::Delete(DeleteRequest {
                            path: Some(path),
                            version: -1,
                        })),
                    ),
                )
            },
            |(c, d)| {
                zxid += 2;
                black_box(apply(&mut store, zxid - 1, &c));
                black_box(apply(&mut store, zxid, &d))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
