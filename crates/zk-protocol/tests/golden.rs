//! Golden vectors for what is not plain jute: the handshake shapes and the multi streams,
//! written by Apache ZooKeeper 3.9.5's Java implementation (`jute-schemas/golden/`).

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use jute::{Reader, Record, Value};
use serde_json::Value as Json;
use zk_protocol::handshake::{
    decode_connect_request, decode_connect_response, encode_connect_response,
};
use zk_protocol::multi::{
    MultiOp, MultiResult, decode_multi_request, decode_multi_response, encode_multi_request,
    encode_multi_response,
};

fn golden(group: &str) -> Vec<(PathBuf, Json)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../jute-schemas/golden")
        .join(group);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let doc = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, doc)
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn bytes_of(doc: &Json) -> Bytes {
    let s = doc["hex"].as_str().unwrap();
    Bytes::from(
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>(),
    )
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::Bool(x) => Json::from(*x),
        Value::Int(x) => Json::from(*x),
        Value::Long(x) => Json::from(*x),
        Value::Ustring(s) => s.as_ref().map_or(Json::Null, |s| Json::from(s.as_str())),
        Value::Buffer(b) => b.as_ref().map_or(Json::Null, |b| Json::from(hex(b))),
        Value::Vector(v) => v
            .as_ref()
            .map_or(Json::Null, |v| Json::Array(v.iter().map(to_json).collect())),
        Value::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect(),
        ),
        other => panic!("unexpected value {other:?}"),
    }
}

#[test]
fn handshakes_with_and_without_read_only() {
    let mut seen = 0;
    for (path, doc) in golden("handshake") {
        let bytes = bytes_of(&doc);
        let fields = &doc["fields"];
        let with_read_only = fields.get("readOnly").is_some();
        match doc["record"].as_str().unwrap() {
            "ConnectRequest" => {
                let h = decode_connect_request(bytes.clone(), jute::DEFAULT_MAX_BUFFER).unwrap();
                assert_eq!(h.read_only_sent, with_read_only, "{path:?}");
                assert_eq!(
                    h.request.time_out as i64,
                    fields["timeOut"].as_i64().unwrap()
                );
                assert_eq!(h.request.session_id, fields["sessionId"].as_i64().unwrap());
                let mut again = BytesMut::new();
                if with_read_only {
                    h.request.encode(&mut again);
                } else {
                    // The legacy shape is the record without its last byte.
                    h.request.encode(&mut again);
                    again.truncate(again.len() - 1);
                }
                assert_eq!(hex(&again), hex(&bytes), "{path:?}");
            }
            "ConnectResponse" => {
                let (resp, sent) = decode_connect_response(bytes.clone()).unwrap();
                assert_eq!(sent, with_read_only, "{path:?}");
                let mut again = BytesMut::new();
                encode_connect_response(&mut again, &resp, with_read_only);
                assert_eq!(hex(&again), hex(&bytes), "{path:?}");
            }
            other => panic!("unexpected record {other}"),
        }
        seen += 1;
    }
    assert_eq!(seen, 4);
}

fn op_body(op: &MultiOp) -> Json {
    to_json(&match op {
        MultiOp::Create(_, r) => r.to_value(),
        MultiOp::CreateTtl(r) => r.to_value(),
        MultiOp::Delete(r) => r.to_value(),
        MultiOp::SetData(r) => r.to_value(),
        MultiOp::Check(r) => r.to_value(),
        MultiOp::GetChildren(r) => r.to_value(),
        MultiOp::GetData(r) => r.to_value(),
    })
}

#[test]
fn multi_requests_and_responses() {
    let mut seen = 0;
    for (path, doc) in golden("multi") {
        let bytes = bytes_of(&doc);
        let expected = doc["fields"]["ops"].as_array().unwrap();
        let mut r = Reader::new(bytes.clone());
        let mut again = BytesMut::new();
        match doc["record"].as_str().unwrap() {
            "MultiOperationRecord" => {
                let ops = decode_multi_request(&mut r).unwrap();
                assert_eq!(ops.len(), expected.len(), "{path:?}");
                for (op, e) in ops.iter().zip(expected) {
                    assert_eq!(op.opcode() as i64, e["type"].as_i64().unwrap(), "{path:?}");
                    assert_eq!(op_body(op), e["body"], "{path:?}");
                }
                encode_multi_request(&mut again, &ops);
            }
            "MultiResponse" => {
                let results = decode_multi_response(&mut r).unwrap();
                assert_eq!(results.len(), expected.len(), "{path:?}");
                for (res, e) in results.iter().zip(expected) {
                    assert_eq!(e["done"], Json::Bool(false));
                    if let MultiResult::Error(code) = res {
                        assert_eq!(*code as i64, e["err"].as_i64().unwrap(), "{path:?}");
                        assert_eq!(e["type"].as_i64(), Some(-1));
                    } else {
                        assert_eq!(e["err"].as_i64(), Some(0), "{path:?}");
                    }
                }
                encode_multi_response(&mut again, &results);
            }
            other => panic!("unexpected record {other}"),
        }
        assert_eq!(r.remaining(), 0, "{path:?}");
        assert_eq!(hex(&again), hex(&bytes), "{path:?}: re-encoding");
        seen += 1;
    }
    assert!(seen >= 8);
}
