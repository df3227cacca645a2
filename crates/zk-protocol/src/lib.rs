//! ZooKeeper's wire vocabulary, on top of the `jute` records.
//!
//! Owns: [`OpCode`] and [`ErrorCode`] (Java numbering, never renumbered), [`CreateMode`],
//! [`perms`], special [`xid`]s, the watch enums, path validation, frames (4-byte length, limit
//! `jute.maxbuffer`, four-letter words before the handshake), the connect handshake with and
//! without the trailing `readOnly` byte, the multi streams and typed [`Request`]s. All of it is
//! pure: no I/O, no tokio, no server state.
//! Does not own: what an operation *does* (that is `zk-datatree`), sessions or connections
//! (`zk-session`).
//!
//! # Layout
//! - `opcode`, `error_code`, `create_mode`, `perms`, `xid`, `watch`: the protocol's numbers.
//! - `path`: `PathUtils.validatePath`.
//! - `frame`: length prefix checks, four-letter words, splitting a byte stream into frames.
//! - `handshake`: `ConnectRequest` (44 or 45 bytes) and the mirroring `ConnectResponse`.
//! - `multi`: `MultiOperationRecord` / `MultiResponse` streams.
//! - `request`: [`Request`], decoded by opcode.
//! - `quorum`: the dynamic configuration (`server.N` specs, reconfig's membership changes).

mod create_mode;
mod error_code;
pub mod frame;
pub mod handshake;
pub mod multi;
mod opcode;
pub mod path;
pub mod perms;
pub mod quorum;
mod request;
pub mod watch;
pub mod xid;

pub use create_mode::{CONTAINER_EPHEMERAL_OWNER, CreateMode, MAX_TTL_MS, TTL_OWNER_PREFIX};
pub use error_code::ErrorCode;
pub use jute;
pub use opcode::OpCode;
pub use request::{Request, RequestError};
