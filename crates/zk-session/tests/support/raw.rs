//! A raw-frame ZooKeeper client for tests: handshake, requests, replies, notifications.
//! Shared by the session tests and the server's end-to-end tests (`#[path]`-included).

#![allow(dead_code)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zk_protocol::frame::write_frame;
use zk_protocol::jute::Record;
use zk_protocol::jute::proto::{ConnectRequest, ReplyHeader, RequestHeader};
use zk_protocol::{OpCode, Request};

/// A raw-frame client.
pub struct Raw {
    pub stream: TcpStream,
    pub session_id: i64,
    pub passwd: Bytes,
    pub timeout: i32,
    pub xid: i32,
}

impl Raw {
    pub async fn connect(addr: std::net::SocketAddr) -> Raw {
        Raw::connect_with(addr, 0, Bytes::from_static(&[0; 16]), true)
            .await
            .unwrap()
    }

    /// Sends a ConnectRequest (45 bytes with readOnly, 44 without) and reads the response.
    pub async fn connect_with(
        addr: std::net::SocketAddr,
        session_id: i64,
        passwd: Bytes,
        read_only_byte: bool,
    ) -> Option<Raw> {
        Raw::connect_seen(addr, session_id, passwd, read_only_byte, 0).await
    }

    /// [`Raw::connect_with`] for a client that has seen `last_zxid_seen`.
    pub async fn connect_seen(
        addr: std::net::SocketAddr,
        session_id: i64,
        passwd: Bytes,
        read_only_byte: bool,
        last_zxid_seen: i64,
    ) -> Option<Raw> {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen,
            time_out: 30_000,
            session_id,
            passwd: Some(passwd),
            read_only: false,
        };
        let mut body = BytesMut::new();
        req.encode(&mut body);
        if !read_only_byte {
            body.truncate(body.len() - 1);
        }
        let mut out = BytesMut::new();
        write_frame(&mut out, |b| b.extend_from_slice(&body));
        stream.write_all(&out).await.unwrap();
        let frame = read_frame(&mut stream).await?;
        let expected = if read_only_byte { 37 } else { 36 };
        assert_eq!(frame.len(), expected, "the reply mirrors the readOnly byte");
        let (resp, _) = zk_protocol::handshake::decode_connect_response(frame).unwrap();
        Some(Raw {
            stream,
            session_id: resp.session_id,
            passwd: resp.passwd.unwrap_or_default(),
            timeout: resp.time_out,
            xid: 0,
        })
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Sends a request with the next xid; returns the xid.
    pub async fn send(&mut self, req: &Request) -> i32 {
        // Pings always travel with xid -2.
        let xid = if matches!(req, Request::Ping) {
            -2
        } else {
            self.xid += 1;
            self.xid
        };
        self.send_op(xid, req.opcode() as i32, req).await;
        xid
    }

    pub async fn send_op(&mut self, xid: i32, opcode: i32, req: &Request) {
        let mut out = BytesMut::new();
        write_frame(&mut out, |b| {
            RequestHeader {
                xid,
                r#type: opcode,
            }
            .encode(b);
            req.encode_body(b);
        });
        self.stream.write_all(&out).await.unwrap();
    }

    /// Reads the next reply: header and body.
    pub async fn recv(&mut self) -> Option<(ReplyHeader, Bytes)> {
        let frame = read_frame(&mut self.stream).await?;
        let mut r = zk_protocol::jute::Reader::new(frame);
        let h = ReplyHeader::decode(&mut r).unwrap();
        Some((h, r.into_remaining()))
    }

    /// Sends a request and returns its reply (notifications before it are returned too).
    pub async fn call(&mut self, req: &Request) -> (ReplyHeader, Bytes) {
        let xid = self.send(req).await;
        loop {
            let (h, b) = self.recv().await.expect("reply");
            if h.xid == xid {
                return (h, b);
            }
            assert_eq!(h.xid, -1, "only notifications may come in between");
        }
    }

    /// Whether the server closed the connection (EOF within the timeout).
    pub async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

pub async fn read_frame(stream: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let n = i32::from_be_bytes(len) as usize;
    let mut body = vec![0u8; n];
    stream.read_exact(&mut body).await.ok()?;
    Some(Bytes::from(body))
}

pub fn op(o: OpCode) -> i32 {
    o as i32
}
