//! Typed requests: a `RequestHeader`'s opcode and the body that follows it.

use bytes::{BufMut, Bytes};
use jute::proto::{
    AddWatchRequest, AuthPacket, CheckVersionRequest, CheckWatchesRequest, CreateRequest,
    CreateTTLRequest, DeleteRequest, ExistsRequest, GetACLRequest, GetAllChildrenNumberRequest,
    GetChildren2Request, GetChildrenRequest, GetDataRequest, GetEphemeralsRequest, GetSASLRequest,
    ReconfigRequest, RemoveWatchesRequest, SetACLRequest, SetDataRequest, SetWatches, SetWatches2,
    SyncRequest,
};
use jute::{DecodeError, Reader, Record};

use crate::OpCode;
use crate::multi::{MultiOp, decode_multi_request, encode_multi_request};

/// Why a request could not be turned into a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The opcode is not one a client may send (ZooKeeper: UNIMPLEMENTED, then close).
    #[error("unknown opcode {0}")]
    UnknownOpcode(i32),
    /// The body does not decode (ZooKeeper: MARSHALLINGERROR, the connection stays).
    #[error("undecodable body: {0}")]
    Decode(#[from] DecodeError),
    /// A multi holds an op type that cannot appear in one.
    #[error("invalid type of op {0} in a multi")]
    InvalidMultiOp(i32),
    /// A multi mixes reads and writes.
    #[error("mixing read and write operations in a multi")]
    MixedMultiOps,
}

/// A client request, decoded by opcode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// create (1), create2 (15) or createContainer (19).
    Create(OpCode, CreateRequest),
    /// createTTL (21).
    CreateTtl(CreateTTLRequest),
    /// delete (2).
    Delete(DeleteRequest),
    /// deleteContainer (20): the body is the path alone, as a ustring (measured on 3.9.5).
    DeleteContainer(String),
    /// exists (3).
    Exists(ExistsRequest),
    /// getData (4).
    GetData(GetDataRequest),
    /// setData (5).
    SetData(SetDataRequest),
    /// getACL (6).
    GetAcl(GetACLRequest),
    /// setACL (7).
    SetAcl(SetACLRequest),
    /// getChildren (8).
    GetChildren(GetChildrenRequest),
    /// sync (9).
    Sync(SyncRequest),
    /// ping (11), no body.
    Ping,
    /// getChildren2 (12).
    GetChildren2(GetChildren2Request),
    /// check (13) outside a multi.
    Check(CheckVersionRequest),
    /// multi (14).
    Multi(Vec<MultiOp>),
    /// reconfig (16).
    Reconfig(ReconfigRequest),
    /// checkWatches (17).
    CheckWatches(CheckWatchesRequest),
    /// removeWatches (18).
    RemoveWatches(RemoveWatchesRequest),
    /// multiRead (22).
    MultiRead(Vec<MultiOp>),
    /// auth (100).
    Auth(AuthPacket),
    /// setWatches (101).
    SetWatches(SetWatches),
    /// sasl (102).
    Sasl(GetSASLRequest),
    /// getEphemerals (103).
    GetEphemerals(GetEphemeralsRequest),
    /// getAllChildrenNumber (104).
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    /// setWatches2 (105).
    SetWatches2(SetWatches2),
    /// addWatch (106).
    AddWatch(AddWatchRequest),
    /// whoAmI (107), no body.
    WhoAmI,
    /// closeSession (-11), no body.
    CloseSession,
}

impl Request {
    /// Decodes a request body for `opcode`. Opcodes that only name transaction types
    /// (notification, error, createSession) and unknown numbers are [`RequestError::UnknownOpcode`].
    pub fn decode(opcode: i32, body: Bytes, max_len: usize) -> Result<Request, RequestError> {
        let r = &mut Reader::with_max_len(body, max_len);
        let op = OpCode::from_i32(opcode).ok_or(RequestError::UnknownOpcode(opcode))?;
        Ok(match op {
            OpCode::Create | OpCode::Create2 | OpCode::CreateContainer => {
                Request::Create(op, CreateRequest::decode(r)?)
            }
            OpCode::CreateTtl => Request::CreateTtl(CreateTTLRequest::decode(r)?),
            OpCode::Delete => Request::Delete(DeleteRequest::decode(r)?),
            OpCode::DeleteContainer => {
                Request::DeleteContainer(r.read_ustring()?.unwrap_or_default())
            }
            OpCode::Exists => Request::Exists(ExistsRequest::decode(r)?),
            OpCode::GetData => Request::GetData(GetDataRequest::decode(r)?),
            OpCode::SetData => Request::SetData(SetDataRequest::decode(r)?),
            OpCode::GetAcl => Request::GetAcl(GetACLRequest::decode(r)?),
            OpCode::SetAcl => Request::SetAcl(SetACLRequest::decode(r)?),
            OpCode::GetChildren => Request::GetChildren(GetChildrenRequest::decode(r)?),
            OpCode::Sync => Request::Sync(SyncRequest::decode(r)?),
            OpCode::Ping => Request::Ping,
            OpCode::GetChildren2 => Request::GetChildren2(GetChildren2Request::decode(r)?),
            OpCode::Check => Request::Check(CheckVersionRequest::decode(r)?),
            OpCode::Multi => match decode_multi_request(r)? {
                ops if ops.iter().any(MultiOp::is_read) => return Err(RequestError::MixedMultiOps),
                ops => Request::Multi(ops),
            },
            OpCode::MultiRead => match decode_multi_request(r)? {
                ops if ops.iter().any(|op| !op.is_read()) => {
                    return Err(RequestError::MixedMultiOps);
                }
                ops => Request::MultiRead(ops),
            },
            OpCode::Reconfig => Request::Reconfig(ReconfigRequest::decode(r)?),
            OpCode::CheckWatches => Request::CheckWatches(CheckWatchesRequest::decode(r)?),
            OpCode::RemoveWatches => Request::RemoveWatches(RemoveWatchesRequest::decode(r)?),
            OpCode::Auth => Request::Auth(AuthPacket::decode(r)?),
            OpCode::SetWatches => Request::SetWatches(SetWatches::decode(r)?),
            OpCode::Sasl => Request::Sasl(GetSASLRequest::decode(r)?),
            OpCode::GetEphemerals => Request::GetEphemerals(GetEphemeralsRequest::decode(r)?),
            OpCode::GetAllChildrenNumber => {
                Request::GetAllChildrenNumber(GetAllChildrenNumberRequest::decode(r)?)
            }
            OpCode::SetWatches2 => Request::SetWatches2(SetWatches2::decode(r)?),
            OpCode::AddWatch => Request::AddWatch(AddWatchRequest::decode(r)?),
            OpCode::WhoAmI => Request::WhoAmI,
            OpCode::CloseSession => Request::CloseSession,
            OpCode::Notification | OpCode::Error | OpCode::CreateSession => {
                return Err(RequestError::UnknownOpcode(opcode));
            }
        })
    }

    /// The request's opcode.
    pub fn opcode(&self) -> OpCode {
        match self {
            Request::Create(op, _) => *op,
            Request::CreateTtl(_) => OpCode::CreateTtl,
            Request::Delete(_) => OpCode::Delete,
            Request::DeleteContainer(_) => OpCode::DeleteContainer,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl(_) => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::Sync(_) => OpCode::Sync,
            Request::Ping => OpCode::Ping,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::Reconfig(_) => OpCode::Reconfig,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::Auth(_) => OpCode::Auth,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::Sasl(_) => OpCode::Sasl,
            Request::GetEphemerals(_) => OpCode::GetEphemerals,
            Request::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::CloseSession => OpCode::CloseSession,
        }
    }

    /// Encodes the request body (the client's side; used by tests, tools and the log).
    pub fn encode_body<B: BufMut>(&self, out: &mut B) {
        match self {
            Request::Create(_, r) => r.encode(out),
            Request::CreateTtl(r) => r.encode(out),
            Request::Delete(r) => r.encode(out),
            Request::DeleteContainer(path) => jute::rt::write_ustring(out, Some(path)),
            Request::Exists(r) => r.encode(out),
            Request::GetData(r) => r.encode(out),
            Request::SetData(r) => r.encode(out),
            Request::GetAcl(r) => r.encode(out),
            Request::SetAcl(r) => r.encode(out),
            Request::GetChildren(r) => r.encode(out),
            Request::Sync(r) => r.encode(out),
            Request::GetChildren2(r) => r.encode(out),
            Request::Check(r) => r.encode(out),
            Request::Multi(ops) | Request::MultiRead(ops) => encode_multi_request(out, ops),
            Request::Reconfig(r) => r.encode(out),
            Request::CheckWatches(r) => r.encode(out),
            Request::RemoveWatches(r) => r.encode(out),
            Request::Auth(r) => r.encode(out),
            Request::SetWatches(r) => r.encode(out),
            Request::Sasl(r) => r.encode(out),
            Request::GetEphemerals(r) => r.encode(out),
            Request::GetAllChildrenNumber(r) => r.encode(out),
            Request::SetWatches2(r) => r.encode(out),
            Request::AddWatch(r) => r.encode(out),
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    #[test]
    fn every_client_opcode_decodes_what_it_encodes() {
        let path = Some("/p".to_string());
        let requests = vec![
            Request::Create(
                OpCode::Create2,
                CreateRequest {
                    path: path.clone(),
                    ..Default::default()
                },
            ),
            Request::Delete(DeleteRequest {
                path: path.clone(),
                version: -1,
            }),
            Request::Exists(ExistsRequest {
                path: path.clone(),
                watch: true,
            }),
            Request::GetData(GetDataRequest {
                path: path.clone(),
                watch: false,
            }),
            Request::SetData(SetDataRequest {
                path: path.clone(),
                data: None,
                version: 2,
            }),
            Request::GetChildren2(GetChildren2Request {
                path: path.clone(),
                watch: true,
            }),
            Request::Sync(SyncRequest { path: path.clone() }),
            Request::Ping,
            Request::Multi(vec![]),
            Request::WhoAmI,
            Request::CloseSession,
        ];
        for req in requests {
            let mut body = BytesMut::new();
            req.encode_body(&mut body);
            let decoded = Request::decode(req.opcode() as i32, body.freeze(), 1 << 20).unwrap();
            assert_eq!(decoded, req);
        }
    }

    #[test]
    fn non_client_and_unknown_opcodes_are_refused() {
        for code in [0, -1, -10, 10, 999] {
            assert_eq!(
                Request::decode(code, Bytes::new(), 1 << 20),
                Err(RequestError::UnknownOpcode(code))
            );
        }
    }

    #[test]
    fn short_bodies_are_decode_errors() {
        assert!(matches!(
            Request::decode(
                OpCode::GetData as i32,
                Bytes::from_static(&[0, 0, 0, 9, b'/']),
                1 << 20
            ),
            Err(RequestError::Decode(DecodeError::UnexpectedEof { .. }))
        ));
    }
}
