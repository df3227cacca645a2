//! Arbitrary bytes never panic a decoder: every jute record, every opcode's request body, the
//! handshake, the multi streams and the frame splitter either decode or return an error.

use bytes::{Bytes, BytesMut};
use jute::Reader;
use proptest::prelude::*;
use zk_protocol::frame::split_frame;
use zk_protocol::handshake::decode_connect_request;
use zk_protocol::multi::decode_multi_response;
use zk_protocol::{OpCode, Request};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn records_and_requests(body in proptest::collection::vec(any::<u8>(), 0..96)) {
        let body = Bytes::from(body);
        for (module, record) in jute::RECORDS {
            let mut r = Reader::with_max_len(body.clone(), 64);
            let _ = jute::decode_value_by_name(module, record, &mut r);
        }
        for op in OpCode::ALL {
            let _ = Request::decode(op as i32, body.clone(), 64);
        }
        let _ = decode_connect_request(body.clone(), 64);
        let _ = decode_multi_response(&mut Reader::with_max_len(body.clone(), 64));
        let mut buf = BytesMut::from(&body[..]);
        while let Ok(Some(_)) = split_frame(&mut buf, 64) {}
    }
}
