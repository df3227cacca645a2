//! The byte layouts of the state-machine store: keys of the `nodes`, `ephemerals` and
//! `sessions` column families and the value of a node.
//!
//! Node key: `parent ‖ 0x00 ‖ name`, the root `/` is the single byte `0x00`. ZooKeeper forbids
//! NUL in paths (and apply rejects it before anything is stored), so the children of `P` are
//! exactly the keys in `[P‖0x00, P‖0x01)`, sorted by name, and no grandchild falls in between.
//!
//! Node value (big-endian), version 1:
//! `1u8, czxid i64, mzxid i64, ctime i64, mtime i64, version i32, cversion i32, aversion i32,
//! ephemeral_owner i64, pzxid i64, num_children i32, acl (jute vector<ACL>), data (jute buffer,
//! -1 = null)`. The data comes last so that decoding slices it out of the value without a copy.

use bytes::{Buf, BufMut, Bytes};
use zk_datatree::{Node, Session, split_parent};
use zk_protocol::jute::data::ACL;
use zk_protocol::jute::{Reader, Record, rt};

use crate::StorageError;

/// The version byte every node value starts with.
const NODE_FORMAT: u8 = 1;

/// The fixed-size part of a node value: version byte and the stored Stat fields.
const NODE_FIXED_LEN: usize = 1 + 8 * 4 + 4 * 3 + 8 * 2 + 4;

/// Returns the `nodes` key of `path`.
pub(crate) fn node_key(path: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(path.len() + 1);
    node_key_into(path, &mut key);
    key
}

/// Writes the `nodes` key of `path` into `key` (cleared first).
pub(crate) fn node_key_into(path: &str, key: &mut Vec<u8>) {
    key.clear();
    match split_parent(path) {
        // ZooKeeper keeps the root under "" as well as "/".
        None if path.is_empty() || path == "/" => key.push(0),
        // A path without a '/' names no node: a key no write ever produces (written keys
        // start with '/' or are the root's 0).
        None => {
            key.push(0xff);
            key.extend_from_slice(path.as_bytes());
        }
        Some((parent, name)) => {
            key.extend_from_slice(parent.as_bytes());
            key.push(0);
            key.extend_from_slice(name.as_bytes());
        }
    }
}

/// Returns the key range `[start, end)` holding the children of `path`.
pub(crate) fn children_range(path: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = Vec::with_capacity(path.len() + 1);
    start.extend_from_slice(path.as_bytes());
    let mut end = start.clone();
    start.push(0);
    end.push(1);
    (start, end)
}

/// Returns the `ephemerals` key of `path` owned by `session_id`.
pub(crate) fn ephemeral_key(session_id: i64, path: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + path.len());
    key.extend_from_slice(&session_id.to_be_bytes());
    key.extend_from_slice(path.as_bytes());
    key
}

/// Returns the `sessions` key of `session_id`.
pub(crate) fn session_key(session_id: i64) -> [u8; 8] {
    session_id.to_be_bytes()
}

/// Decodes a `sessions` key.
pub(crate) fn decode_session_key(key: &[u8]) -> Result<i64, StorageError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("session key of {} bytes", key.len())))?;
    Ok(i64::from_be_bytes(bytes))
}

/// Encodes a session row: the negotiated timeout.
pub(crate) fn encode_session(session: &Session) -> [u8; 4] {
    session.timeout_ms.to_be_bytes()
}

/// Decodes a session row.
pub(crate) fn decode_session(value: &[u8]) -> Result<Session, StorageError> {
    let bytes: [u8; 4] = value
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("session value of {} bytes", value.len())))?;
    Ok(Session {
        timeout_ms: i32::from_be_bytes(bytes),
    })
}

/// Encodes a node value.
pub(crate) fn encode_node(node: &Node) -> Vec<u8> {
    let mut out = Vec::new();
    encode_node_into(node, &mut out);
    out
}

/// Encodes a node value into `out` (cleared first), so that a batch of nodes can share one
/// buffer.
pub(crate) fn encode_node_into(node: &Node, out: &mut Vec<u8>) {
    let acl_len: usize = 4 + node.acl.iter().map(Record::encoded_len).sum::<usize>();
    let data_len = 4 + node.data.as_ref().map_or(0, Bytes::len);
    out.clear();
    out.reserve(NODE_FIXED_LEN + acl_len + data_len);
    out.put_u8(NODE_FORMAT);
    out.put_i64(node.czxid);
    out.put_i64(node.mzxid);
    out.put_i64(node.ctime);
    out.put_i64(node.mtime);
    out.put_i32(node.version);
    out.put_i32(node.cversion);
    out.put_i32(node.aversion);
    out.put_i64(node.ephemeral_owner);
    out.put_i64(node.pzxid);
    out.put_i32(node.num_children);
    rt::write_vector(out, Some(&node.acl), |o, acl| acl.encode(o));
    rt::write_buffer(out, node.data.as_deref());
}

/// Decodes a node value; the data is a slice of `value`, not a copy.
pub(crate) fn decode_node(value: Bytes) -> Result<Node, StorageError> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("node value: {what}"));
    if value.len() < NODE_FIXED_LEN {
        return Err(corrupt("truncated"));
    }
    let mut buf = value;
    let format = buf.get_u8();
    if format != NODE_FORMAT {
        return Err(corrupt(&format!("unknown format {format}")));
    }
    let czxid = buf.get_i64();
    let mzxid = buf.get_i64();
    let ctime = buf.get_i64();
    let mtime = buf.get_i64();
    let version = buf.get_i32();
    let cversion = buf.get_i32();
    let aversion = buf.get_i32();
    let ephemeral_owner = buf.get_i64();
    let pzxid = buf.get_i64();
    let num_children = buf.get_i32();
    // We wrote these bytes ourselves: no jute.maxbuffer limit applies on the way back.
    let mut reader = Reader::with_max_len(buf, usize::MAX);
    let acl = reader
        .read_vector(ACL::decode)
        .map_err(|e| corrupt(&format!("acl: {e}")))?
        .unwrap_or_default();
    let data = reader
        .read_buffer()
        .map_err(|e| corrupt(&format!("data: {e}")))?;
    if reader.remaining() != 0 {
        return Err(corrupt("trailing bytes"));
    }
    Ok(Node {
        czxid,
        mzxid,
        ctime,
        mtime,
        version,
        cversion,
        aversion,
        ephemeral_owner,
        pzxid,
        num_children,
        data,
        acl: acl.into(),
    })
}

#[cfg(test)]
mod tests {
    use zk_protocol::jute::data::Id;

    use super::*;

    #[test]
    fn keys() {
        assert_eq!(node_key("/"), b"\0");
        assert_eq!(node_key("/a"), b"/\0a");
        assert_eq!(node_key("/a/bc"), b"/a\0bc");
        assert_eq!(children_range("/"), (b"/\0".to_vec(), b"/\x01".to_vec()));
        assert_eq!(children_range("/a"), (b"/a\0".to_vec(), b"/a\x01".to_vec()));
        // A grandchild and a sibling with a longer name stay out of the children range.
        let (start, end) = children_range("/a");
        for outside in [node_key("/a/b/c"), node_key("/ab"), node_key("/a")] {
            assert!(!(start <= outside && outside < end), "{outside:?}");
        }
        assert_eq!(ephemeral_key(1, "/x")[..8], [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(decode_session_key(&session_key(-5)).unwrap(), -5);
    }

    #[test]
    fn nodes_round_trip_with_null_and_empty_data() {
        let acl = vec![ACL {
            perms: 31,
            id: Id {
                scheme: Some("world".into()),
                id: Some("anyone".into()),
            },
        }];
        for data in [None, Some(Bytes::new()), Some(Bytes::from_static(b"hello"))] {
            let node = Node {
                czxid: 1,
                mzxid: 2,
                ctime: 3,
                mtime: 4,
                version: 5,
                cversion: -6,
                aversion: 7,
                ephemeral_owner: i64::MIN,
                pzxid: 9,
                num_children: 10,
                data,
                acl: acl.clone().into(),
            };
            let decoded = decode_node(Bytes::from(encode_node(&node))).unwrap();
            assert_eq!(decoded, node);
        }
        assert!(decode_node(Bytes::from_static(b"\x01short")).is_err());
    }
}
