//! The multi request and response streams (`MultiOperationRecord`, `MultiResponse`).
//!
//! A multi is a sequence of `MultiHeader{type, done=false, err=-1}` + op record, closed by
//! `MultiHeader{-1, true, -1}`. The response mirrors it with `MultiHeader{type, false, err}` +
//! result record; a failed op is `type = -1` with an `ErrorResponse`. One multi holds either
//! only write ops (multi, 14) or only read ops (multiRead, 22); ZooKeeper refuses a mix.

use bytes::{BufMut, Bytes};
use jute::data::Stat;
use jute::proto::{
    CheckVersionRequest, Create2Response, CreateRequest, CreateResponse, CreateTTLRequest,
    DeleteRequest, ErrorResponse, GetChildrenRequest, GetChildrenResponse, GetDataRequest,
    GetDataResponse, MultiHeader, SetDataRequest, SetDataResponse,
};
use jute::{Reader, Record};

use crate::{OpCode, RequestError};

/// One operation of a multi or multiRead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiOp {
    /// create (1), create2 (15) or createContainer (19), as the header's type said.
    Create(OpCode, CreateRequest),
    /// createTTL (21).
    CreateTtl(CreateTTLRequest),
    /// delete (2).
    Delete(DeleteRequest),
    /// setData (5).
    SetData(SetDataRequest),
    /// check (13).
    Check(CheckVersionRequest),
    /// getChildren (8), in a multiRead.
    GetChildren(GetChildrenRequest),
    /// getData (4), in a multiRead.
    GetData(GetDataRequest),
}

impl MultiOp {
    /// The op's type as its header carries it.
    pub fn opcode(&self) -> OpCode {
        match self {
            MultiOp::Create(op, _) => *op,
            MultiOp::CreateTtl(_) => OpCode::CreateTtl,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
            MultiOp::GetChildren(_) => OpCode::GetChildren,
            MultiOp::GetData(_) => OpCode::GetData,
        }
    }

    /// Whether this is a read (allowed only in a multiRead).
    pub fn is_read(&self) -> bool {
        matches!(self, MultiOp::GetChildren(_) | MultiOp::GetData(_))
    }
}

/// Decodes a multi's op stream. An unknown op type, a mix of reads and writes or a short
/// input is an error (ZooKeeper answers it with MARSHALLINGERROR).
pub fn decode_multi_request(r: &mut Reader) -> Result<Vec<MultiOp>, RequestError> {
    let mut ops = Vec::new();
    loop {
        let header = MultiHeader::decode(r)?;
        if header.done {
            return Ok(ops);
        }
        let op = match OpCode::from_i32(header.r#type) {
            Some(code @ (OpCode::Create | OpCode::Create2 | OpCode::CreateContainer)) => {
                let req = CreateRequest::decode(r)?;
                // Java rebuilds the op with Op.create(path, data, acl, flags): a TTL mode
                // without a TTL fails there, and the whole multi is a MARSHALLINGERROR.
                if matches!(req.flags, 5 | 6) {
                    return Err(RequestError::InvalidMultiOp(header.r#type));
                }
                MultiOp::Create(code, req)
            }
            Some(OpCode::CreateTtl) => MultiOp::CreateTtl(CreateTTLRequest::decode(r)?),
            Some(OpCode::Delete) => MultiOp::Delete(DeleteRequest::decode(r)?),
            Some(OpCode::SetData) => MultiOp::SetData(SetDataRequest::decode(r)?),
            Some(OpCode::Check) => MultiOp::Check(CheckVersionRequest::decode(r)?),
            Some(OpCode::GetChildren) => MultiOp::GetChildren(GetChildrenRequest::decode(r)?),
            Some(OpCode::GetData) => MultiOp::GetData(GetDataRequest::decode(r)?),
            _ => return Err(RequestError::InvalidMultiOp(header.r#type)),
        };
        if ops
            .first()
            .is_some_and(|first: &MultiOp| first.is_read() != op.is_read())
        {
            return Err(RequestError::MixedMultiOps);
        }
        ops.push(op);
    }
}

/// Encodes a multi's op stream (the client's side; used by tests and tools).
pub fn encode_multi_request<B: BufMut>(out: &mut B, ops: &[MultiOp]) {
    for op in ops {
        MultiHeader {
            r#type: op.opcode() as i32,
            done: false,
            err: -1,
        }
        .encode(out);
        match op {
            MultiOp::Create(_, req) => req.encode(out),
            MultiOp::CreateTtl(req) => req.encode(out),
            MultiOp::Delete(req) => req.encode(out),
            MultiOp::SetData(req) => req.encode(out),
            MultiOp::Check(req) => req.encode(out),
            MultiOp::GetChildren(req) => req.encode(out),
            MultiOp::GetData(req) => req.encode(out),
        }
    }
    END.encode(out);
}

/// The header that closes a multi stream.
const END: MultiHeader = MultiHeader {
    r#type: -1,
    done: true,
    err: -1,
};

/// One result of a multi or multiRead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiResult {
    /// A create whose result is just the path (type 1).
    Create(String),
    /// A create whose result carries the Stat (type 15).
    Create2(String, Stat),
    /// A delete (type 2, no body).
    Delete,
    /// A setData (type 5).
    SetData(Stat),
    /// A check (type 13, no body).
    Check,
    /// A getChildren in a multiRead (type 8).
    GetChildren(Vec<String>),
    /// A getData in a multiRead (type 4).
    GetData(Option<Bytes>, Stat),
    /// A failed op, or an op of a failed multi (type -1), with its error code.
    Error(i32),
}

/// Encodes a multi response body.
pub fn encode_multi_response<B: BufMut>(out: &mut B, results: &[MultiResult]) {
    for result in results {
        let (kind, err) = match result {
            MultiResult::Create(_) => (OpCode::Create, 0),
            MultiResult::Create2(..) => (OpCode::Create2, 0),
            MultiResult::Delete => (OpCode::Delete, 0),
            MultiResult::SetData(_) => (OpCode::SetData, 0),
            MultiResult::Check => (OpCode::Check, 0),
            MultiResult::GetChildren(_) => (OpCode::GetChildren, 0),
            MultiResult::GetData(..) => (OpCode::GetData, 0),
            MultiResult::Error(err) => (OpCode::Error, *err),
        };
        MultiHeader {
            r#type: kind as i32,
            done: false,
            err,
        }
        .encode(out);
        match result {
            MultiResult::Create(path) => CreateResponse {
                path: Some(path.clone()),
            }
            .encode(out),
            MultiResult::Create2(path, stat) => Create2Response {
                path: Some(path.clone()),
                stat: stat.clone(),
            }
            .encode(out),
            MultiResult::Delete | MultiResult::Check => {}
            MultiResult::SetData(stat) => SetDataResponse { stat: stat.clone() }.encode(out),
            MultiResult::GetChildren(children) => GetChildrenResponse {
                children: Some(children.clone()),
            }
            .encode(out),
            MultiResult::GetData(data, stat) => GetDataResponse {
                data: data.clone(),
                stat: stat.clone(),
            }
            .encode(out),
            MultiResult::Error(err) => ErrorResponse { err: *err }.encode(out),
        }
    }
    END.encode(out);
}

/// Decodes a multi response body (the client's side; used by tests and tools).
pub fn decode_multi_response(r: &mut Reader) -> Result<Vec<MultiResult>, RequestError> {
    let mut results = Vec::new();
    loop {
        let header = MultiHeader::decode(r)?;
        if header.done {
            return Ok(results);
        }
        results.push(match OpCode::from_i32(header.r#type) {
            Some(OpCode::Create) => {
                MultiResult::Create(CreateResponse::decode(r)?.path.unwrap_or_default())
            }
            Some(OpCode::Create2) => {
                let resp = Create2Response::decode(r)?;
                MultiResult::Create2(resp.path.unwrap_or_default(), resp.stat)
            }
            Some(OpCode::Delete) => MultiResult::Delete,
            Some(OpCode::Check) => MultiResult::Check,
            Some(OpCode::SetData) => MultiResult::SetData(SetDataResponse::decode(r)?.stat),
            Some(OpCode::GetChildren) => MultiResult::GetChildren(
                GetChildrenResponse::decode(r)?.children.unwrap_or_default(),
            ),
            Some(OpCode::GetData) => {
                let resp = GetDataResponse::decode(r)?;
                MultiResult::GetData(resp.data, resp.stat)
            }
            Some(OpCode::Error) => MultiResult::Error(ErrorResponse::decode(r)?.err),
            _ => return Err(RequestError::InvalidMultiOp(header.r#type)),
        });
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    fn path(p: &str) -> Option<String> {
        Some(p.to_string())
    }

    #[test]
    fn request_round_trips() {
        let ops = vec![
            MultiOp::Create(
                OpCode::Create,
                CreateRequest {
                    path: path("/a"),
                    data: Some(Bytes::from_static(b"x")),
                    acl: Some(vec![]),
                    flags: 0,
                },
            ),
            MultiOp::Delete(DeleteRequest {
                path: path("/b"),
                version: 3,
            }),
            MultiOp::Check(CheckVersionRequest {
                path: path("/c"),
                version: -1,
            }),
        ];
        let mut out = BytesMut::new();
        encode_multi_request(&mut out, &ops);
        let decoded = decode_multi_request(&mut Reader::new(out.freeze())).unwrap();
        assert_eq!(decoded, ops);
    }

    #[test]
    fn mixed_and_unknown_ops_are_refused() {
        let mixed = [
            MultiOp::Delete(DeleteRequest {
                path: path("/b"),
                version: 3,
            }),
            MultiOp::GetData(GetDataRequest {
                path: path("/c"),
                watch: false,
            }),
        ];
        let mut out = BytesMut::new();
        encode_multi_request(&mut out, &mixed);
        assert_eq!(
            decode_multi_request(&mut Reader::new(out.freeze())),
            Err(RequestError::MixedMultiOps)
        );

        let mut out = BytesMut::new();
        MultiHeader {
            r#type: OpCode::Exists as i32,
            done: false,
            err: -1,
        }
        .encode(&mut out);
        assert_eq!(
            decode_multi_request(&mut Reader::new(out.freeze())),
            Err(RequestError::InvalidMultiOp(3))
        );
        // No terminator: the input ends inside the stream.
        assert!(matches!(
            decode_multi_request(&mut Reader::new(Bytes::new())),
            Err(RequestError::Decode(_))
        ));
    }

    #[test]
    fn response_round_trips() {
        let results = vec![
            MultiResult::Create("/a".into()),
            MultiResult::Create2("/b".into(), Stat::default()),
            MultiResult::Delete,
            MultiResult::SetData(Stat::default()),
            MultiResult::Check,
            MultiResult::Error(-101),
        ];
        let mut out = BytesMut::new();
        encode_multi_response(&mut out, &results);
        assert_eq!(
            decode_multi_response(&mut Reader::new(out.freeze())).unwrap(),
            results
        );
    }
}
