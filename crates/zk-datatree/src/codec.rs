//! The log encoding of a [`Command`]: what every replica decodes and applies.
//!
//! Layout (big-endian): `version u8 = 1`, `time_ms i64`, `session_id i64`, `xid i32`, the auth
//! ids (`count u16`, then per id `scheme` and `id` as `u16` length + UTF-8), the features (`u8`: bit 0
//! extendedTypesEnabled, bit 1 reconfigEnabled),
//! `kind u8`, then for kind 0 (a client request) `opcode i32` + the jute request body, for kind 1
//! (createSession) `timeout_ms i32` + `server_id u8`, nothing for kind 2 (closeSession), and
//! the path for kind 3 (reap).
//! The request body is kept in ZooKeeper's own encoding, so the log holds what the client sent.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use zk_protocol::{ErrorCode, Request};

use crate::{AuthId, Command, Features, Op};

const VERSION: u8 = 1;

/// Why a log entry could not be decoded into a command (a corrupt or foreign log).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandDecodeError {
    /// The entry ended early.
    #[error("log entry truncated")]
    Truncated,
    /// The entry was written by an unknown format version.
    #[error("unknown log entry version {0}")]
    Version(u8),
    /// The entry's kind byte is unknown.
    #[error("unknown command kind {0}")]
    Kind(u8),
    /// The request inside does not decode.
    #[error("request in log entry: {0}")]
    Request(#[from] zk_protocol::RequestError),
}

/// About the bytes `op` takes encoded, so that the buffer is allocated once for the common
/// writes (a value of any size) instead of growing while the value is copied in.
fn body_size_hint(op: &Op) -> usize {
    let path = |p: &Option<String>| p.as_ref().map_or(0, String::len);
    let data = |d: &Option<Bytes>| d.as_ref().map_or(0, Bytes::len);
    let acl = |a: &Option<Vec<zk_protocol::jute::data::ACL>>| 32 * a.as_ref().map_or(0, Vec::len);
    match op {
        Op::Request(Request::SetData(r)) => 16 + path(&r.path) + data(&r.data),
        Op::Request(Request::Create(_, r)) => 24 + path(&r.path) + data(&r.data) + acl(&r.acl),
        Op::Request(Request::CreateTtl(r)) => 32 + path(&r.path) + data(&r.data) + acl(&r.acl),
        _ => 64,
    }
}

impl Command {
    /// Encodes the command for the log.
    pub fn encode(&self) -> Bytes {
        let auth: usize = self
            .auth
            .iter()
            .map(|a| 8 + a.scheme.len() + a.id.len())
            .sum();
        let mut out = BytesMut::with_capacity(32 + auth + body_size_hint(&self.op));
        out.put_u8(VERSION);
        out.put_i64(self.time_ms);
        out.put_i64(self.session_id);
        out.put_i32(self.xid);
        out.put_u16(u16::try_from(self.auth.len()).expect("fewer than 65536 auth ids"));
        for a in self.auth.iter() {
            put_str(&mut out, &a.scheme);
            put_str(&mut out, &a.id);
        }
        out.put_u8(
            u8::from(self.features.extended_types)
                | (u8::from(self.features.reconfig_enabled) << 1)
                | (u8::from(self.features.enforce_quota) << 2),
        );
        match &self.op {
            Op::Request(req) => {
                out.put_u8(0);
                out.put_i32(req.opcode() as i32);
                req.encode_body(&mut out);
            }
            Op::CreateSession {
                timeout_ms,
                server_id,
            } => {
                out.put_u8(1);
                out.put_i32(*timeout_ms);
                out.put_u8(*server_id);
            }
            Op::CloseSession => out.put_u8(2),
            Op::Reap { path } => {
                out.put_u8(3);
                put_str(&mut out, path);
            }
            Op::Configure(result) => {
                out.put_u8(4);
                match result {
                    Ok(servers) => {
                        out.put_i32(0);
                        out.put_slice(servers.as_bytes());
                    }
                    Err(code) => out.put_i32(code.code()),
                }
            }
        }
        out.freeze()
    }

    /// Decodes a command from the log. The request body is decoded without a length limit
    /// beyond the entry itself: it was accepted under the limits when it was proposed.
    pub fn decode(mut bytes: Bytes) -> Result<Command, CommandDecodeError> {
        if bytes.remaining() < 1 + 8 + 8 + 4 {
            return Err(CommandDecodeError::Truncated);
        }
        let version = bytes.get_u8();
        if version != VERSION {
            return Err(CommandDecodeError::Version(version));
        }
        let time_ms = bytes.get_i64();
        let session_id = bytes.get_i64();
        let xid = bytes.get_i32();
        if bytes.remaining() < 2 {
            return Err(CommandDecodeError::Truncated);
        }
        let count = bytes.get_u16();
        let mut auth = Vec::with_capacity(usize::from(count).min(16));
        for _ in 0..count {
            let scheme = get_str(&mut bytes)?;
            let id = get_str(&mut bytes)?;
            auth.push(AuthId { scheme, id });
        }
        if bytes.remaining() < 2 {
            return Err(CommandDecodeError::Truncated);
        }
        let bits = bytes.get_u8();
        let features = Features {
            extended_types: bits & 1 != 0,
            reconfig_enabled: bits & 2 != 0,
            enforce_quota: bits & 4 != 0,
        };
        let op = match bytes.get_u8() {
            0 => {
                if bytes.remaining() < 4 {
                    return Err(CommandDecodeError::Truncated);
                }
                let opcode = bytes.get_i32();
                let max = bytes.len();
                Op::Request(Request::decode(opcode, bytes, max)?)
            }
            1 => {
                if bytes.remaining() < 5 {
                    return Err(CommandDecodeError::Truncated);
                }
                Op::CreateSession {
                    timeout_ms: bytes.get_i32(),
                    server_id: bytes.get_u8(),
                }
            }
            2 => Op::CloseSession,
            3 => Op::Reap {
                path: get_str(&mut bytes)?,
            },
            4 => {
                if bytes.remaining() < 4 {
                    return Err(CommandDecodeError::Truncated);
                }
                Op::Configure(match bytes.get_i32() {
                    0 => Ok(String::from_utf8_lossy(&bytes).into_owned()),
                    code => Err(ErrorCode::from_i32(code).ok_or(CommandDecodeError::Kind(4))?),
                })
            }
            kind => return Err(CommandDecodeError::Kind(kind)),
        };
        Ok(Command {
            time_ms,
            session_id,
            xid,
            auth: auth.into(),
            features,
            op,
        })
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u16(u16::try_from(s.len()).expect("auth ids are shorter than 64 KiB"));
    out.put_slice(s.as_bytes());
}

fn get_str(bytes: &mut Bytes) -> Result<String, CommandDecodeError> {
    if bytes.remaining() < 2 {
        return Err(CommandDecodeError::Truncated);
    }
    let len = usize::from(bytes.get_u16());
    if bytes.remaining() < len {
        return Err(CommandDecodeError::Truncated);
    }
    Ok(String::from_utf8_lossy(&bytes.split_to(len)).into_owned())
}

#[cfg(test)]
mod tests {
    use zk_protocol::OpCode;
    use zk_protocol::jute::proto::CreateRequest;

    use super::*;

    #[test]
    fn commands_round_trip() {
        let commands = [
            Command {
                time_ms: 1_700_000_000_000,
                session_id: 0x0100_0000_0000_0007,
                xid: 42,
                auth: vec![
                    AuthId::new("ip", "127.0.0.1"),
                    AuthId::new("digest", "u:h="),
                ]
                .into(),
                features: Features::default(),
                op: Op::Request(Request::Create(
                    OpCode::Create2,
                    CreateRequest {
                        path: Some("/a".into()),
                        data: None,
                        acl: Some(vec![]),
                        flags: 3,
                    },
                )),
            },
            Command {
                time_ms: 1,
                session_id: 0,
                xid: 0,
                auth: Default::default(),
                features: Features::default(),
                op: Op::CreateSession {
                    timeout_ms: 30_000,
                    server_id: 1,
                },
            },
            Command {
                time_ms: 2,
                session_id: 9,
                xid: -11,
                auth: Default::default(),
                features: Features {
                    extended_types: true,
                    reconfig_enabled: true,
                    enforce_quota: true,
                },
                op: Op::CloseSession,
            },
            Command {
                time_ms: 3,
                session_id: 0,
                xid: 0,
                auth: Default::default(),
                features: Features::default(),
                op: Op::Reap { path: "/c".into() },
            },
            Command {
                op: Op::Configure(Ok("server.1=h:1:2:participant;3\n".into())),
                ..Command::internal(7, 1, Op::CloseSession)
            },
            Command {
                op: Op::Configure(Err(ErrorCode::NewConfigNoQuorum)),
                ..Command::internal(7, 2, Op::CloseSession)
            },
        ];
        for cmd in &commands {
            assert_eq!(Command::decode(cmd.encode()).as_ref(), Ok(cmd));
        }
        assert_eq!(
            Command::decode(Bytes::from_static(&[1, 0])),
            Err(CommandDecodeError::Truncated)
        );
        let mut bad = commands[2].encode().to_vec();
        bad[0] = 9;
        assert_eq!(
            Command::decode(bad.into()),
            Err(CommandDecodeError::Version(9))
        );
    }
}
