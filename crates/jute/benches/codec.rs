//! jute encode/decode of the records on the hot paths: a getData reply (Stat + data), a
//! create request (path, data, ACL) and a watch event.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jute::Record;
use jute::data::{ACL, Id, Stat};
use jute::proto::{CreateRequest, GetDataResponse, WatcherEvent};

fn stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0042,
        mzxid: 0x1_0000_0099,
        ctime: 1_764_000_000_000,
        mtime: 1_764_000_000_123,
        version: 7,
        cversion: 3,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 100,
        num_children: 2,
        pzxid: 0x1_0000_0050,
    }
}

fn create() -> CreateRequest {
    CreateRequest {
        path: Some("/brokers/topics/orders/partitions/17/state".into()),
        data: Some(Bytes::from(vec![b'x'; 100])),
        acl: Some(vec![ACL {
            perms: 31,
            id: Id {
                scheme: Some("world".into()),
                id: Some("anyone".into()),
            },
        }]),
        flags: 0,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("jute");
    g.throughput(Throughput::Elements(1));
    let get = GetDataResponse {
        data: Some(Bytes::from(vec![b'v'; 100])),
        stat: stat(),
    };
    g.bench_function("encode GetDataResponse (100 B)", |b| {
        let mut out = BytesMut::with_capacity(256);
        b.iter(|| {
            out.clear();
            black_box(&get).encode(&mut out);
            black_box(out.len())
        })
    });
    let get_bytes = get.to_bytes();
    g.bench_function("decode GetDataResponse (100 B)", |b| {
        b.iter(|| GetDataResponse::from_bytes(black_box(get_bytes.clone())).unwrap())
    });
    let create = create();
    g.bench_function("encode CreateRequest", |b| {
        let mut out = BytesMut::with_capacity(256);
        b.iter(|| {
            out.clear();
            black_box(&create).encode(&mut out);
            black_box(out.len())
        })
    });
    let create_bytes = create.to_bytes();
    g.bench_function("decode CreateRequest", |b| {
        b.iter(|| CreateRequest::from_bytes(black_box(create_bytes.clone())).unwrap())
    });
    let event = WatcherEvent {
        r#type: 3,
        state: 3,
        path: Some("/config/app/feature-flags".into()),
    };
    g.bench_function("encode WatcherEvent", |b| {
        let mut out = BytesMut::with_capacity(64);
        b.iter(|| {
            out.clear();
            black_box(&event).encode(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
