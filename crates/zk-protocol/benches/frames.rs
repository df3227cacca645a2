//! The request path before any server logic: split frames off a read buffer holding many
//! pipelined requests, decode their headers and typed bodies, and a multi's op stream.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use zk_protocol::frame::{split_frame, write_frame};
use zk_protocol::jute::data::{ACL, Id};
use zk_protocol::jute::proto::{CreateRequest, GetDataRequest, RequestHeader, SetDataRequest};
use zk_protocol::jute::{DEFAULT_MAX_BUFFER, Reader, Record};
use zk_protocol::multi::MultiOp;
use zk_protocol::{OpCode, Request};

fn request_frame(out: &mut BytesMut, xid: i32, req: &Request) {
    write_frame(out, |b| {
        RequestHeader {
            xid,
            r#type: req.opcode() as i32,
        }
        .encode(b);
        req.encode_body(b);
    });
}

fn get(i: usize) -> Request {
    Request::GetData(GetDataRequest {
        path: Some(format!("/bench/node-{i:06}")),
        watch: false,
    })
}

fn create(i: usize) -> CreateRequest {
    CreateRequest {
        path: Some(format!("/bench/node-{i:06}")),
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

/// Splits every frame off `wire` and decodes header and body, as a connection does.
fn decode_all(wire: &Bytes) -> usize {
    let mut buf = BytesMut::from(&wire[..]);
    let mut n = 0;
    while let Some(frame) = split_frame(&mut buf, DEFAULT_MAX_BUFFER).unwrap() {
        let mut r = Reader::new(frame);
        let header = RequestHeader::decode(&mut r).unwrap();
        let req = Request::decode(header.r#type, r.into_remaining(), DEFAULT_MAX_BUFFER).unwrap();
        black_box(req);
        n += 1;
    }
    n
}

fn bench(c: &mut Criterion) {
    const BATCH: usize = 64;
    let mut g = c.benchmark_group("frames");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut reads = BytesMut::new();
    for i in 0..BATCH {
        request_frame(&mut reads, i as i32, &get(i));
    }
    let reads = reads.freeze();
    g.bench_function("split+decode 64 pipelined getData", |b| {
        b.iter(|| assert_eq!(decode_all(black_box(&reads)), BATCH))
    });
    let mut writes = BytesMut::new();
    for i in 0..BATCH {
        let req = if i % 2 == 0 {
            Request::Create(OpCode::Create, create(i))
        } else {
            Request::SetData(SetDataRequest {
                path: Some(format!("/bench/node-{i:06}")),
                data: Some(Bytes::from(vec![b'y'; 100])),
                version: -1,
            })
        };
        request_frame(&mut writes, i as i32, &req);
    }
    let writes = writes.freeze();
    g.bench_function("split+decode 64 pipelined create/setData (100 B)", |b| {
        b.iter(|| assert_eq!(decode_all(black_box(&writes)), BATCH))
    });
    g.finish();

    let mut g = c.benchmark_group("multi");
    let ops: Vec<MultiOp> = (0..10)
        .map(|i| MultiOp::Create(OpCode::Create, create(i)))
        .collect();
    let mut multi = BytesMut::new();
    request_frame(&mut multi, 1, &Request::Multi(ops));
    let multi = multi.freeze();
    g.throughput(Throughput::Elements(1));
    g.bench_function("split+decode multi of 10 creates", |b| {
        b.iter(|| assert_eq!(decode_all(black_box(&multi)), 1))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
