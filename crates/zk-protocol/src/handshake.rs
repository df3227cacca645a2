//! The connect handshake, whose `readOnly` byte is optional.
//!
//! Clients up to ZooKeeper 3.3, and go-zookeeper, send a 44-byte `ConnectRequest` without the
//! trailing `readOnly` byte; newer clients send 45 bytes. ZooKeeper (`ProtocolManager`) decodes
//! the first five fields, then tries to read the byte and remembers whether it was there; the
//! reply carries `readOnly` only if the request did (36 or 37 bytes for a 16-byte password).

use bytes::{Bytes, BytesMut};
use jute::proto::{ConnectRequest, ConnectResponse};
use jute::{DecodeError, Reader, Record, rt};

/// A decoded connect request and whether it carried the `readOnly` byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The request; `read_only` is false when the byte was absent.
    pub request: ConnectRequest,
    /// Whether the client sent the `readOnly` byte (the reply must mirror it).
    pub read_only_sent: bool,
}

/// Decodes a connect request body (the first frame of a connection).
pub fn decode_connect_request(body: Bytes, max_len: usize) -> Result<Handshake, DecodeError> {
    let mut r = Reader::with_max_len(body, max_len);
    let mut request = ConnectRequest {
        protocol_version: r.read_int()?,
        last_zxid_seen: r.read_long()?,
        time_out: r.read_int()?,
        session_id: r.read_long()?,
        passwd: r.read_buffer()?,
        read_only: false,
    };
    let read_only_sent = match r.read_bool() {
        Ok(read_only) => {
            request.read_only = read_only;
            true
        }
        Err(_) => false,
    };
    Ok(Handshake {
        request,
        read_only_sent,
    })
}

/// Encodes a connect response body, with the `readOnly` byte only if `with_read_only`.
pub fn encode_connect_response(
    out: &mut BytesMut,
    response: &ConnectResponse,
    with_read_only: bool,
) {
    if with_read_only {
        response.encode(out);
    } else {
        rt::write_int(out, response.protocol_version);
        rt::write_int(out, response.time_out);
        rt::write_long(out, response.session_id);
        rt::write_buffer(out, response.passwd.as_deref());
    }
}

/// Decodes a connect response body, with or without the `readOnly` byte (the client's side of
/// the handshake, used by tests and tools). Returns the response and whether the byte was there.
pub fn decode_connect_response(body: Bytes) -> Result<(ConnectResponse, bool), DecodeError> {
    let mut r = Reader::new(body);
    let mut response = ConnectResponse {
        protocol_version: r.read_int()?,
        time_out: r.read_int()?,
        session_id: r.read_long()?,
        passwd: r.read_buffer()?,
        read_only: false,
    };
    let sent = match r.read_bool() {
        Ok(v) => {
            response.read_only = v;
            true
        }
        Err(_) => false,
    };
    Ok((response, sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(read_only: Option<bool>) -> Bytes {
        let mut b = BytesMut::new();
        rt::write_int(&mut b, 0);
        rt::write_long(&mut b, 7);
        rt::write_int(&mut b, 30_000);
        rt::write_long(&mut b, 0);
        rt::write_buffer(&mut b, Some(&[0; 16]));
        if let Some(v) = read_only {
            rt::write_bool(&mut b, v);
        }
        b.freeze()
    }

    #[test]
    fn both_request_shapes_decode() {
        let old = request(None);
        assert_eq!(old.len(), 44);
        let h = decode_connect_request(old, 1 << 20).unwrap();
        assert!(!h.read_only_sent);
        assert_eq!(h.request.last_zxid_seen, 7);
        assert_eq!(h.request.time_out, 30_000);

        let new = request(Some(true));
        assert_eq!(new.len(), 45);
        let h = decode_connect_request(new, 1 << 20).unwrap();
        assert!(h.read_only_sent);
        assert!(h.request.read_only);
    }

    #[test]
    fn truncated_request_is_an_error() {
        let mut short = request(None);
        let _ = short.split_off(40);
        assert!(decode_connect_request(short, 1 << 20).is_err());
    }

    #[test]
    fn reply_mirrors_the_request() {
        let resp = ConnectResponse {
            protocol_version: 0,
            time_out: 30_000,
            session_id: 0x0100_0000_0000_0001,
            passwd: Some(Bytes::from_static(&[9; 16])),
            read_only: false,
        };
        let mut with = BytesMut::new();
        encode_connect_response(&mut with, &resp, true);
        let mut without = BytesMut::new();
        encode_connect_response(&mut without, &resp, false);
        assert_eq!(with.len(), 37);
        assert_eq!(without.len(), 36);
        assert_eq!(&with[..36], &without[..]);
        assert_eq!(
            decode_connect_response(with.freeze()).unwrap(),
            (resp.clone(), true)
        );
        assert_eq!(
            decode_connect_response(without.freeze()).unwrap(),
            (resp, false)
        );
    }
}
