//! openraft's type configuration for ferrokeeper, and the byte encodings of what the log store
//! and the state store keep for openraft (entries, log ids, votes, membership).
//!
//! Hot paths (every entry, every apply batch) use small fixed binary layouts; rare values
//! (votes, membership, snapshot metadata) use serde JSON, so that they follow openraft's types
//! without hand-written code.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use openraft::impls::leader_id_std::LeaderId;
use openraft::{BasicNode, EntryPayload};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

openraft::declare_raft_types!(
    /// ferrokeeper's openraft types: u64 node ids, one leader per term (so a term names a
    /// leader, see design-notes §1), entries carrying an encoded `zk_datatree::Command`, the
    /// entry's zxid as the response, checkpoint directories as snapshots.
    pub(crate) TypeConfig:
        D = LogCommand,
        R = i64,
        NodeId = u64,
        Node = BasicNode,
        LeaderId = LeaderId<u64, u64>,
);

/// The committed form of a leader id: just the term, as there is one leader per term.
pub(crate) type CommittedLeaderId = openraft::alias::CommittedLeaderIdOf<TypeConfig>;
/// A log entry as openraft sees it.
pub(crate) type Entry = openraft::alias::EntryOf<TypeConfig>;
/// A log id (term of the leader that proposed it, index).
pub(crate) type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A vote.
pub(crate) type Vote = openraft::alias::VoteOf<TypeConfig>;
/// The last applied membership config and the log id that carried it.
pub(crate) type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// A snapshot's metadata.
pub(crate) type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot: metadata and the checkpoint directory.
pub(crate) type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotDir>;

/// The application data of a normal entry: `zk_datatree::Command::encode()`'s bytes, kept as
/// they are so that apply decodes exactly what was proposed. On the server that proposed it
/// the entry also carries the command itself, which `bytes` is the encoding of: apply there
/// takes it instead of decoding (never serialized: every other copy, on a follower or read back
/// from the log, decodes `bytes`).
#[derive(Clone, Debug)]
pub(crate) struct LogCommand {
    pub(crate) bytes: Bytes,
    pub(crate) decoded: Option<Arc<zk_datatree::Command>>,
}

impl LogCommand {
    /// An entry's payload as it arrives from elsewhere (a leader, the log).
    pub(crate) fn from_bytes(bytes: Bytes) -> Self {
        LogCommand {
            bytes,
            decoded: None,
        }
    }

    /// The payload of a command proposed here.
    pub(crate) fn proposed(cmd: zk_datatree::Command) -> Self {
        LogCommand {
            bytes: cmd.encode(),
            decoded: Some(Arc::new(cmd)),
        }
    }

    /// The command: the one proposed here, or `bytes` decoded.
    pub(crate) fn command(
        &self,
    ) -> Result<Arc<zk_datatree::Command>, zk_datatree::CommandDecodeError> {
        match &self.decoded {
            Some(cmd) => {
                debug_assert_eq!(
                    zk_datatree::Command::decode(self.bytes.clone()).as_ref(),
                    Ok(&**cmd),
                    "a proposed command decodes to itself"
                );
                Ok(Arc::clone(cmd))
            }
            None => zk_datatree::Command::decode(self.bytes.clone()).map(Arc::new),
        }
    }
}

/// Equal when the logged bytes are (the decoded command is a cache of them).
impl PartialEq for LogCommand {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for LogCommand {}

impl fmt::Display for LogCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command({} bytes)", self.bytes.len())
    }
}

impl Serialize for LogCommand {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.bytes)
    }
}

impl<'de> Deserialize<'de> for LogCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = LogCommand;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("command bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<LogCommand, E> {
                Ok(LogCommand::from_bytes(Bytes::copy_from_slice(v)))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<LogCommand, E> {
                Ok(LogCommand::from_bytes(Bytes::from(v)))
            }
            // Formats without a bytes type (JSON) hand over a sequence of numbers.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LogCommand, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(LogCommand::from_bytes(Bytes::from(out)))
            }
        }
        d.deserialize_byte_buf(BytesVisitor)
    }
}

/// A snapshot: a RocksDB checkpoint of the state store, a directory that also holds the
/// snapshot's metadata file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotDir(pub(crate) PathBuf);

pub(crate) fn corrupt(what: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Entry kinds in the log store's value.
const ENTRY_BLANK: u8 = 0;
const ENTRY_NORMAL: u8 = 1;
const ENTRY_MEMBERSHIP: u8 = 2;

/// Encodes an entry for the log store: `kind u8, term u64, payload` (the command bytes for a
/// normal entry, the membership as JSON). The index is the key, not repeated here.
pub(crate) fn encode_entry(entry: &Entry) -> io::Result<Vec<u8>> {
    let term = entry.log_id.leader_id.term;
    let membership;
    let (kind, body): (u8, &[u8]) = match &entry.payload {
        EntryPayload::Blank => (ENTRY_BLANK, &[]),
        EntryPayload::Normal(cmd) => (ENTRY_NORMAL, &cmd.bytes),
        EntryPayload::Membership(m) => {
            membership = serde_json::to_vec(m).map_err(io::Error::other)?;
            (ENTRY_MEMBERSHIP, &membership)
        }
    };
    let mut out = Vec::with_capacity(9 + body.len());
    out.push(kind);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Decodes an entry stored at `index`.
pub(crate) fn decode_entry(index: u64, value: Vec<u8>) -> io::Result<Entry> {
    let mut buf = Bytes::from(value);
    if buf.len() < 9 {
        return Err(corrupt(format!("log entry {index}: truncated")));
    }
    let kind = buf.get_u8();
    let term = buf.get_u64();
    let log_id = LogId::new(CommittedLeaderId::new(term), index);
    let payload = match kind {
        ENTRY_BLANK => EntryPayload::Blank,
        ENTRY_NORMAL => EntryPayload::Normal(LogCommand::from_bytes(buf)),
        ENTRY_MEMBERSHIP => EntryPayload::Membership(
            serde_json::from_slice(&buf)
                .map_err(|e| corrupt(format!("log entry {index}: membership: {e}")))?,
        ),
        other => return Err(corrupt(format!("log entry {index}: unknown kind {other}"))),
    };
    Ok(Entry { log_id, payload })
}

/// Returns the log id of an entry stored at `index` without decoding its payload.
pub(crate) fn entry_log_id(index: u64, value: &[u8]) -> io::Result<LogId> {
    let term: [u8; 8] = value
        .get(1..9)
        .and_then(|t| t.try_into().ok())
        .ok_or_else(|| corrupt(format!("log entry {index}: truncated")))?;
    Ok(LogId::new(
        CommittedLeaderId::new(u64::from_be_bytes(term)),
        index,
    ))
}

/// Encodes a log id: `term u64, index u64`.
pub(crate) fn encode_log_id(id: &LogId) -> [u8; 16] {
    let mut out = [0; 16];
    out[..8].copy_from_slice(&id.leader_id.term.to_be_bytes());
    out[8..].copy_from_slice(&id.index.to_be_bytes());
    out
}

/// Decodes a log id; an empty value is `None` (how "no log id" is stored).
pub(crate) fn decode_log_id(value: &[u8]) -> io::Result<Option<LogId>> {
    if value.is_empty() {
        return Ok(None);
    }
    let bytes: [u8; 16] = value
        .try_into()
        .map_err(|_| corrupt(format!("log id of {} bytes", value.len())))?;
    let term = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let index = u64::from_be_bytes(bytes[8..].try_into().expect("8 bytes"));
    Ok(Some(LogId::new(CommittedLeaderId::new(term), index)))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::Membership;

    use super::*;

    #[test]
    fn entries_round_trip() {
        let log_id = LogId::new(CommittedLeaderId::new(3), 42);
        let members = Membership::new(
            vec![BTreeSet::from([1])],
            BTreeMap::from([(1, BasicNode::new("127.0.0.1"))]),
        )
        .unwrap();
        for payload in [
            EntryPayload::Blank,
            EntryPayload::Normal(LogCommand::from_bytes(Bytes::from_static(b"\x01abc"))),
            EntryPayload::Membership(members),
        ] {
            let entry = Entry { log_id, payload };
            let bytes = encode_entry(&entry).unwrap();
            assert_eq!(entry_log_id(42, &bytes).unwrap(), log_id);
            assert_eq!(decode_entry(42, bytes).unwrap(), entry);
        }
        assert!(decode_entry(1, vec![1, 0]).is_err());
        assert!(decode_entry(1, vec![9; 9]).is_err());
    }

    #[test]
    fn log_ids_round_trip() {
        let id = LogId::new(CommittedLeaderId::new(7), 1 << 40);
        assert_eq!(decode_log_id(&encode_log_id(&id)).unwrap(), Some(id));
        assert_eq!(decode_log_id(&[]).unwrap(), None);
        assert!(decode_log_id(&[1, 2]).is_err());
    }

    #[test]
    fn commands_serialize_as_bytes() {
        let cmd = LogCommand::from_bytes(Bytes::from_static(b"\x00\xffx"));
        let json = serde_json::to_vec(&cmd).unwrap();
        assert_eq!(serde_json::from_slice::<LogCommand>(&json).unwrap(), cmd);
    }
}
