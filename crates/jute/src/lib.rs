//! ZooKeeper's jute binary format, and the records of ZooKeeper's protocol generated from
//! `jute-schemas/*.jute`.
//!
//! Owns: the wire encoding of jute's types (big-endian numbers, length-prefixed strings and
//! buffers with -1 for null, counted vectors), the [`Record`] trait, the bounded [`Reader`]
//! and the generated records in [`data`], [`proto`], [`txn`], [`quorum`] and [`persistence`].
//! Does not own: framing, handshakes, opcodes or any ZooKeeper semantics (that is
//! `zk-protocol`), and it does no I/O.
//!
//! # Layout
//! - `schema` (build time): the `nom` parser of the schema language and the code generator,
//!   run by `build.rs`; the generated code is not checked in.
//! - [`Reader`]: decoding with Java's rules and limits. Decoding never panics: a short input is
//!   [`DecodeError::UnexpectedEof`], a length that is negative (other than -1, null) or above
//!   the limit is [`DecodeError::BadLength`].
//! - [`rt`]: the encoding primitives the generated code calls.
//! - [`Value`]: a dynamic view of any record, used by schema-driven tests and tools.
//!
//! Decoding follows `org.apache.jute.BinaryInputArchive` of ZooKeeper 3.9: a boolean is true
//! for any non-zero byte, a string's bytes are decoded as UTF-8 with invalid sequences
//! replaced (as `new String(bytes, UTF_8)` does), and a vector count below -1 reads as an empty
//! vector.

#[cfg(test)]
mod schema;

mod reader;
pub mod rt;
mod value;

pub use bytes;
pub use reader::{DecodeError, Reader, decode_utf8_like_java};
pub use value::Value;

use bytes::{BufMut, Bytes, BytesMut};

/// `jute.maxbuffer`'s default: the largest frame, and the base of the largest string or buffer,
/// that ZooKeeper accepts (0xfffff bytes).
pub const DEFAULT_MAX_BUFFER: usize = 0xfffff;

/// `zookeeper.jute.maxbuffer.extrasize`'s default (equal to `jute.maxbuffer`): the slack Java
/// adds to the limit on a single string or buffer length.
pub const DEFAULT_EXTRA_MAX_BUFFER: usize = DEFAULT_MAX_BUFFER;

/// A jute record: a fixed sequence of fields encoded in declaration order, without tags.
pub trait Record: Sized {
    /// The jute module that declares the record, e.g. `org.apache.zookeeper.proto`.
    const MODULE: &'static str;
    /// The record's name, e.g. `ConnectRequest`.
    const NAME: &'static str;

    /// Appends the record's encoding to `out`.
    fn encode<B: BufMut>(&self, out: &mut B);

    /// Returns the number of bytes [`Record::encode`] writes.
    fn encoded_len(&self) -> usize;

    /// Decodes one record from the front of `r`.
    fn decode(r: &mut Reader) -> Result<Self, DecodeError>;

    /// Returns a dynamic view of the record, fields named as in the schema.
    fn to_value(&self) -> Value;

    /// Returns the record's encoding as a new buffer.
    fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out.freeze()
    }

    /// Decodes one record from the front of `bytes` with the default limits. Trailing bytes are
    /// ignored, as ZooKeeper ignores them after a request body.
    fn from_bytes(bytes: Bytes) -> Result<Self, DecodeError> {
        Self::decode(&mut Reader::new(bytes))
    }
}

include!(concat!(env!("OUT_DIR"), "/records.rs"));
