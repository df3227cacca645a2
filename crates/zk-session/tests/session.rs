//! The session layer end to end over raw frames, with the in-memory backend: handshake shapes,
//! the ops, watches, bad input with ZooKeeper's answers, reconnect, close and expiry.

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::{Raw, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zk_protocol::jute::data::{ACL, Id};
use zk_protocol::jute::proto::{
    Create2Response, CreateRequest, CreateResponse, DeleteRequest, ExistsRequest,
    GetChildren2Request, GetChildren2Response, GetDataRequest, GetDataResponse, SetDataRequest,
    WatcherEvent,
};
use zk_protocol::jute::{Reader, Record};
use zk_protocol::multi::{MultiOp, MultiResult, decode_multi_response};
use zk_protocol::watch::EventType;
use zk_protocol::{ErrorCode, OpCode, Request};
use zk_session::{FourLetterWhitelist, SessionConfig, session_password};

fn acl() -> Option<Vec<ACL>> {
    Some(vec![ACL {
        perms: 31,
        id: Id {
            scheme: Some("world".into()),
            id: Some("anyone".into()),
        },
    }])
}

fn create(path: &str, data: Option<&'static [u8]>, flags: i32) -> Request {
    Request::Create(
        OpCode::Create,
        CreateRequest {
            path: Some(path.into()),
            data: data.map(Bytes::from_static),
            acl: acl(),
            flags,
        },
    )
}

fn get(path: &str, watch: bool) -> Request {
    Request::GetData(GetDataRequest {
        path: Some(path.into()),
        watch,
    })
}

fn config() -> SessionConfig {
    SessionConfig {
        four_letter_words: FourLetterWhitelist::parse("ruok,srvr"),
        ..SessionConfig::default()
    }
}

#[tokio::test]
async fn handshake_mirrors_read_only_and_hands_out_zookeeper_passwords() {
    let addr = start(config()).await;
    let c45 = Raw::connect_with(addr, 0, Bytes::from_static(&[0; 16]), true)
        .await
        .unwrap();
    let c44 = Raw::connect_with(addr, 0, Bytes::from_static(&[0; 16]), false)
        .await
        .unwrap();
    assert_ne!(c45.session_id, c44.session_id);
    assert_eq!(c45.session_id >> 56, 1, "server id in the high byte");
    assert_eq!(&c45.passwd[..], &session_password(c45.session_id)[..]);
    assert_eq!(c45.timeout, 30_000);
}

#[tokio::test]
async fn create_read_update_delete_with_zookeepers_stats() {
    let addr = start(config()).await;
    let mut c = Raw::connect(addr).await;
    let (h, body) = c.call(&create("/a", Some(b"hello"), 0)).await;
    assert_eq!(h.err, 0);
    let created = CreateResponse::from_bytes(body).unwrap();
    assert_eq!(created.path.as_deref(), Some("/a"));
    let czxid = h.zxid;

    let (h, body) = c.call(&get("/a", false)).await;
    let got = GetDataResponse::from_bytes(body).unwrap();
    assert_eq!((h.err, h.zxid), (0, czxid));
    assert_eq!(got.data.as_deref(), Some(&b"hello"[..]));
    assert_eq!(
        (got.stat.czxid, got.stat.version, got.stat.data_length),
        (czxid, 0, 5)
    );

    let (h, _) = c
        .call(&Request::SetData(SetDataRequest {
            path: Some("/a".into()),
            data: None,
            version: 7,
        }))
        .await;
    assert_eq!(h.err, ErrorCode::BadVersion.code());

    let create2 = Request::Create(
        OpCode::Create2,
        CreateRequest {
            path: Some("/a/s-".into()),
            data: None,
            acl: acl(),
            flags: 2,
        },
    );
    let (_, body) = c.call(&create2).await;
    let c2 = Create2Response::from_bytes(body).unwrap();
    assert_eq!(c2.path.as_deref(), Some("/a/s-0000000000"));

    let (_, body) = c
        .call(&Request::GetChildren2(GetChildren2Request {
            path: Some("/a".into()),
            watch: false,
        }))
        .await;
    let kids = GetChildren2Response::from_bytes(body).unwrap();
    assert_eq!(kids.children, Some(vec!["s-0000000000".to_string()]));
    assert_eq!((kids.stat.cversion, kids.stat.num_children), (1, 1));

    let (_, body) = c.call(&get("/a/s-0000000000", false)).await;
    assert_eq!(
        GetDataResponse::from_bytes(body).unwrap().data,
        None,
        "null data stays null"
    );

    let (h, _) = c
        .call(&Request::Delete(DeleteRequest {
            path: Some("/a".into()),
            version: -1,
        }))
        .await;
    assert_eq!(h.err, ErrorCode::NotEmpty.code());
    let (h, _) = c.call(&Request::Ping).await;
    assert_eq!(h.err, 0);
}

#[tokio::test]
async fn watches_fire_once_before_the_data_is_visible() {
    let addr = start(config()).await;
    let mut a = Raw::connect(addr).await;
    let mut b = Raw::connect(addr).await;
    b.call(&create("/w", Some(b"1"), 0)).await;
    let (h, _) = a.call(&get("/w", true)).await;
    assert_eq!(h.err, 0);
    let (h, _) = a
        .call(&Request::Exists(ExistsRequest {
            path: Some("/w/new".into()),
            watch: true,
        }))
        .await;
    assert_eq!(
        h.err,
        ErrorCode::NoNode.code(),
        "exists on a missing node still sets a watch"
    );

    let (set, _) = b
        .call(&Request::SetData(SetDataRequest {
            path: Some("/w".into()),
            data: Some(Bytes::from_static(b"2")),
            version: -1,
        }))
        .await;
    let (created, _) = b.call(&create("/w/new", None, 0)).await;

    let (h, body) = a.recv().await.unwrap();
    let ev = WatcherEvent::from_bytes(body).unwrap();
    assert_eq!(
        (h.xid, h.zxid),
        (-1, set.zxid),
        "the notification carries the triggering zxid"
    );
    assert_eq!(
        (ev.r#type, ev.state, ev.path.as_deref()),
        (EventType::NodeDataChanged as i32, 3, Some("/w"))
    );
    let (h, body) = a.recv().await.unwrap();
    let ev = WatcherEvent::from_bytes(body).unwrap();
    assert_eq!(
        (h.zxid, ev.r#type),
        (created.zxid, EventType::NodeCreated as i32)
    );

    // One-shot: a second change sends nothing; the next reply is the read's.
    b.call(&Request::SetData(SetDataRequest {
        path: Some("/w".into()),
        data: None,
        version: -1,
    }))
    .await;
    let (h, _) = a.call(&get("/w", false)).await;
    assert!(h.xid > 0);
}

#[tokio::test]
async fn bad_input_gets_zookeepers_answers() {
    let addr = start(config()).await;
    let mut c = Raw::connect(addr).await;
    // An undecodable body: MARSHALLINGERROR, and the connection stays.
    c.send_raw(&[0, 0, 0, 12, 0, 0, 0, 9, 0, 0, 0, 4, 0, 0, 0, 50])
        .await;
    let (h, _) = c.recv().await.unwrap();
    assert_eq!((h.xid, h.err), (9, ErrorCode::MarshallingError.code()));
    let (h, _) = c.call(&Request::Ping).await;
    assert_eq!(h.err, 0);
    // Invalid paths: BADARGUMENTS or NONODE depending on the op (reference §8b).
    for (path, want) in [
        ("rel", ErrorCode::BadArguments),
        ("/a//b", ErrorCode::NoNode),
        ("/a\0b", ErrorCode::BadArguments),
    ] {
        let (h, _) = c.call(&create(path, None, 0)).await;
        assert_eq!(h.err, want.code(), "create {path:?}");
    }
    for path in ["rel", "/a//b", "/a/", "/zz/.."] {
        let (h, _) = c.call(&get(path, false)).await;
        assert_eq!(h.err, ErrorCode::NoNode.code(), "getData {path:?}");
    }
    let (h, _) = c
        .call(&Request::Exists(ExistsRequest {
            path: Some("/a\0b".into()),
            watch: false,
        }))
        .await;
    assert_eq!(h.err, ErrorCode::BadArguments.code());
    // An unknown opcode: UNIMPLEMENTED, then the connection closes; the session survives.
    c.send_op(77, 999, &Request::Ping).await;
    let (h, _) = c.recv().await.unwrap();
    assert_eq!((h.xid, h.err), (77, ErrorCode::Unimplemented.code()));
    assert!(c.closed().await);
    let again = Raw::connect_with(addr, c.session_id, c.passwd.clone(), true)
        .await
        .unwrap();
    assert_eq!(again.session_id, c.session_id);

    // Frame lengths below 0 or above jute.maxbuffer: closed without a reply.
    for len in [-1i32, 0x100000] {
        let mut c = Raw::connect(addr).await;
        c.send_raw(&len.to_be_bytes()).await;
        assert!(c.closed().await, "length {len}");
    }
    // Other clients are still served.
    let mut other = Raw::connect(addr).await;
    assert_eq!(other.call(&Request::Ping).await.0.err, 0);
}

#[tokio::test]
async fn reconnect_keeps_the_session_and_a_wrong_password_is_expired() {
    let addr = start(config()).await;
    let mut c = Raw::connect(addr).await;
    c.call(&create("/eph", None, 1)).await;
    drop(c.stream);
    let mut back = Raw::connect_with(addr, c.session_id, c.passwd.clone(), true)
        .await
        .unwrap();
    assert_eq!(back.session_id, c.session_id);
    assert_eq!(
        back.call(&get("/eph", false)).await.0.err,
        0,
        "the ephemeral survived"
    );

    let mut wrong = Raw::connect_with(addr, c.session_id, Bytes::from_static(&[1; 16]), true)
        .await
        .unwrap();
    assert_eq!((wrong.session_id, wrong.timeout), (0, 0));
    assert!(wrong.closed().await);
    // As in Apache ZooKeeper 3.9.5, the wrong password also closes the session's current
    // connection; the session survives and its client reconnects.
    assert!(back.closed().await);
    let mut back = Raw::connect_with(addr, c.session_id, c.passwd.clone(), true)
        .await
        .unwrap();
    assert_eq!(back.session_id, c.session_id);
    let mut unknown = Raw::connect_with(
        addr,
        0x0100_0000_0000_9999,
        Bytes::copy_from_slice(&session_password(0x0100_0000_0000_9999)),
        false,
    )
    .await
    .unwrap();
    assert_eq!((unknown.session_id, unknown.timeout), (0, 0));
    assert!(unknown.closed().await);

    // closeSession deletes the ephemerals, answers, and closes the connection.
    let (h, _) = back.call(&Request::CloseSession).await;
    assert_eq!(h.err, 0);
    assert!(back.closed().await);
    let mut d = Raw::connect(addr).await;
    assert_eq!(
        d.call(&get("/eph", false)).await.0.err,
        ErrorCode::NoNode.code()
    );
}

#[tokio::test]
async fn multi_reports_per_op_results() {
    let addr = start(config()).await;
    let mut c = Raw::connect(addr).await;
    let ops = vec![
        MultiOp::Create(
            OpCode::Create,
            CreateRequest {
                path: Some("/m".into()),
                data: None,
                acl: acl(),
                flags: 0,
            },
        ),
        MultiOp::Delete(DeleteRequest {
            path: Some("/missing".into()),
            version: -1,
        }),
        MultiOp::Create(
            OpCode::Create,
            CreateRequest {
                path: Some("/n".into()),
                data: None,
                acl: acl(),
                flags: 0,
            },
        ),
    ];
    let (h, body) = c.call(&Request::Multi(ops)).await;
    assert_eq!(h.err, 0, "a failed multi still has err 0 in its header");
    let results = decode_multi_response(&mut Reader::new(body)).unwrap();
    assert_eq!(
        results,
        vec![
            MultiResult::Error(0),
            MultiResult::Error(-101),
            MultiResult::Error(-2)
        ]
    );
    assert_eq!(
        c.call(&get("/m", false)).await.0.err,
        ErrorCode::NoNode.code()
    );
}

#[tokio::test]
async fn quiet_sessions_expire_and_lose_their_ephemerals() {
    let addr = start(SessionConfig {
        tick_ms: 50,
        session_timeout_ms_min: 100,
        session_timeout_ms_max: 400,
        ..config()
    })
    .await;
    let mut c = Raw::connect(addr).await;
    assert_eq!(
        c.timeout, 400,
        "30 s requested, clamped to maxSessionTimeout"
    );
    c.call(&create("/gone", None, 1)).await;
    let mut watcher = Raw::connect(addr).await;
    watcher.call(&get("/gone", true)).await;
    // The first client goes silent; the watcher keeps pinging.
    let mut deleted = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        watcher.send(&Request::Ping).await;
        while let Ok(Some((h, body))) =
            tokio::time::timeout(Duration::from_millis(20), watcher.recv()).await
        {
            if h.xid == -1 {
                let ev = WatcherEvent::from_bytes(body).unwrap();
                assert_eq!(ev.r#type, EventType::NodeDeleted as i32);
                deleted = true;
            }
        }
        if deleted {
            break;
        }
    }
    assert!(deleted, "the ephemeral of the expired session was deleted");
    assert!(
        c.closed().await,
        "the expired session's connection is closed"
    );
}

#[tokio::test]
async fn expired_sessions_give_back_their_connection_slots() {
    // Two connections per address; both sessions expire while their connections are open.
    // Their slots must be free again (a closed connection used to stay counted when the
    // expiry closed it first).
    let addr = start(SessionConfig {
        tick_ms: 50,
        session_timeout_ms_min: 100,
        session_timeout_ms_max: 200,
        connections_per_ip_max: 2,
        ..config()
    })
    .await;
    let mut a = Raw::connect(addr).await;
    let mut b = Raw::connect(addr).await;
    assert!(a.closed().await && b.closed().await, "expired and closed");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..2 {
        let mut c = Raw::connect(addr).await;
        assert_eq!(c.call(&Request::Ping).await.0.err, 0);
        assert_eq!(c.call(&Request::CloseSession).await.0.err, 0);
    }
}

#[tokio::test]
async fn four_letter_words_and_the_whitelist() {
    let addr = start(config()).await;
    let ask = |w: &'static [u8]| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(w).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    assert_eq!(ask(b"ruok").await, "imok");
    assert!(
        ask(b"srvr")
            .await
            .starts_with("Zookeeper version: 3.9.5-ferrokeeper-")
    );
    assert_eq!(
        ask(b"envi").await,
        "envi is not executed because it is not in the whitelist.\n"
    );
}

#[tokio::test]
async fn persistent_watches_stay_and_can_be_removed() {
    use zk_protocol::jute::proto::{
        AddWatchRequest, CheckWatchesRequest, ErrorResponse, RemoveWatchesRequest,
    };
    let addr = start(config()).await;
    let mut w = Raw::connect(addr).await;
    let mut c = Raw::connect(addr).await;
    c.call(&create("/r", None, 0)).await;
    let (h, body) = w
        .call(&Request::AddWatch(AddWatchRequest {
            path: Some("/r".into()),
            mode: 1,
        }))
        .await;
    assert_eq!(h.err, 0);
    assert_eq!(
        ErrorResponse::from_bytes(body).unwrap().err,
        0,
        "addWatch answers a 4-byte ErrorResponse(0)"
    );
    c.call(&create("/r/a", None, 0)).await;
    c.call(&Request::SetData(SetDataRequest {
        path: Some("/r/a".into()),
        data: None,
        version: -1,
    }))
    .await;
    c.call(&Request::SetData(SetDataRequest {
        path: Some("/r".into()),
        data: None,
        version: -1,
    }))
    .await;
    let mut events = Vec::new();
    for _ in 0..3 {
        let (h, body) = w.recv().await.unwrap();
        assert_eq!(h.xid, -1);
        let ev = WatcherEvent::from_bytes(body).unwrap();
        events.push((ev.r#type, ev.path.unwrap()));
    }
    assert_eq!(
        events,
        vec![
            (EventType::NodeCreated as i32, "/r/a".to_string()),
            (EventType::NodeDataChanged as i32, "/r/a".to_string()),
            (EventType::NodeDataChanged as i32, "/r".to_string()),
        ],
        "recursive: the node and its descendants, and no NodeChildrenChanged"
    );
    let check = |t: i32| {
        Request::CheckWatches(CheckWatchesRequest {
            path: Some("/r".into()),
            r#type: t,
        })
    };
    assert_eq!(w.call(&check(5)).await.0.err, 0);
    assert_eq!(w.call(&check(2)).await.0.err, ErrorCode::NoWatcher.code());
    let remove = Request::RemoveWatches(RemoveWatchesRequest {
        path: Some("/r".into()),
        r#type: 3,
    });
    assert_eq!(w.call(&remove).await.0.err, 0);
    assert_eq!(w.call(&remove).await.0.err, ErrorCode::NoWatcher.code());
    c.call(&create("/r/b", None, 0)).await;
    let (h, _) = w.call(&get("/r", false)).await;
    assert!(h.xid > 0, "no event after removeWatches");
}

#[tokio::test]
async fn the_reaper_deletes_emptied_containers() {
    let addr = start(SessionConfig {
        container_check_interval_ms: 50,
        ..config()
    })
    .await;
    let mut c = Raw::connect(addr).await;
    let container = Request::Create(
        OpCode::CreateContainer,
        CreateRequest {
            path: Some("/box".into()),
            data: None,
            acl: acl(),
            flags: 4,
        },
    );
    assert_eq!(c.call(&container).await.0.err, 0);
    c.call(&create("/box/item", None, 0)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        c.call(&get("/box", false)).await.0.err,
        0,
        "a container with a child stays"
    );
    c.call(&Request::Delete(DeleteRequest {
        path: Some("/box/item".into()),
        version: -1,
    }))
    .await;
    let mut gone = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if c.call(&get("/box", false)).await.0.err == ErrorCode::NoNode.code() {
            gone = true;
            break;
        }
    }
    assert!(gone, "the emptied container was reaped");
}

#[tokio::test]
async fn pipelined_writes_are_answered_in_order_before_a_later_read() {
    let addr = start(config()).await;
    let mut c = Raw::connect(addr).await;
    c.call(&create("/pipe", None, 0)).await;
    let mut xids = Vec::new();
    for i in 0..50 {
        xids.push(c.send(&create(&format!("/pipe/n{i}"), None, 0)).await);
    }
    let read = c
        .send(&Request::GetChildren2(GetChildren2Request {
            path: Some("/pipe".into()),
            watch: false,
        }))
        .await;
    for xid in xids {
        let (h, _) = c.recv().await.unwrap();
        assert_eq!((h.xid, h.err), (xid, 0));
    }
    let (h, body) = c.recv().await.unwrap();
    assert_eq!(h.xid, read);
    let kids = GetChildren2Response::from_bytes(body).unwrap();
    assert_eq!(
        kids.children.unwrap().len(),
        50,
        "the read sees every earlier write"
    );
}

#[tokio::test]
async fn connection_and_watch_four_letter_words() {
    let addr = start(SessionConfig {
        four_letter_words: FourLetterWhitelist::parse("*"),
        ..config()
    })
    .await;
    let mut c = Raw::connect(addr).await;
    c.call(&get("/zookeeper", true)).await;
    c.call(&Request::GetChildren2(GetChildren2Request {
        path: Some("/".into()),
        watch: true,
    }))
    .await;
    let ask = |w: &'static [u8]| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(w).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    // As ZooKeeper: child watches are not in these summaries.
    assert_eq!(
        ask(b"wchs").await,
        "1 connections watching 1 paths\nTotal watches:1\n"
    );
    let sid = format!("0x{:x}", c.session_id);
    assert_eq!(ask(b"wchc").await, format!("{sid}\n\t/zookeeper\n\n"));
    assert_eq!(ask(b"wchp").await, format!("/zookeeper\n\t{sid}\n\n"));
    let cons = ask(b"cons").await;
    assert!(
        cons.contains(&format!("[1](queued=0,recved=3,sent=3,sid={sid},lop=GETC,")),
        "{cons}"
    );
    let stat = ask(b"stat").await;
    assert!(
        stat.contains("Clients:\n /127.0.0.1:") && stat.contains("Mode: standalone"),
        "{stat}"
    );
    assert_eq!(ask(b"crst").await, "Connection stats reset.\n");
    assert!(ask(b"dump").await.contains("\tip: /127.0.0.1:"));
}

#[tokio::test]
async fn enforced_auth_closes_unauthenticated_connections() {
    use zk_protocol::jute::proto::{AuthPacket, GetSASLRequest, SetSASLResponse};
    let addr = start(SessionConfig {
        enforce_auth_schemes: vec!["digest".into()],
        sasl_users: [("bob".to_string(), "secret".to_string())].into(),
        ..config()
    })
    .await;
    // Anything but auth and sasl, before authenticating: SESSIONCLOSEDREQUIRESASLAUTH with
    // zxid 0, no body, and the connection closes (pings too, and before the body is read).
    let mut c = Raw::connect(addr).await;
    let (h, body) = c.call(&get("/", false)).await;
    assert_eq!(
        (h.err, h.zxid, body.len()),
        (ErrorCode::SessionClosedRequireSaslAuth.code(), 0, 0)
    );
    assert!(c.closed().await);
    let mut c = Raw::connect(addr).await;
    c.send_op(5, 999, &Request::Ping).await;
    let (h, _) = c.recv().await.unwrap();
    assert_eq!(
        (h.xid, h.err),
        (5, ErrorCode::SessionClosedRequireSaslAuth.code())
    );
    assert!(c.closed().await);
    // After addauth with an enforced scheme, requests are served.
    let mut c = Raw::connect(addr).await;
    let (h, _) = c
        .call(&Request::Auth(AuthPacket {
            r#type: 0,
            scheme: Some("digest".into()),
            auth: Some(Bytes::from_static(b"u:p")),
        }))
        .await;
    assert_eq!(h.err, 0);
    assert_eq!(c.call(&get("/", false)).await.0.err, 0);
    // A SASL exchange that fails: AUTHFAILED with an empty token (zxid 0), then closed.
    let mut c = Raw::connect(addr).await;
    let sasl = |token: &'static [u8]| {
        Request::Sasl(GetSASLRequest {
            token: Some(Bytes::from_static(token)),
        })
    };
    let (h, body) = c.call(&sasl(b"")).await;
    assert_eq!(h.err, 0);
    let challenge = SetSASLResponse::decode(&mut Reader::new(body)).unwrap();
    assert!(challenge.token.is_some_and(|t| !t.is_empty()));
    let (h, body) = c.call(&sasl(b"username=\"bob\",garbage")).await;
    assert_eq!((h.err, h.zxid), (ErrorCode::AuthFailed.code(), 0));
    let resp = SetSASLResponse::decode(&mut Reader::new(body)).unwrap();
    assert_eq!(resp.token, None);
    assert!(c.closed().await);
}

#[tokio::test]
async fn the_request_throttle_answers_throttledop_after_a_long_wait() {
    // One request in process at a time; a write stays in process for 300 ms.
    let config = |wait_ms| SessionConfig {
        request_throttle_max_requests: 1,
        throttled_op_wait_ms: wait_ms,
        ..config()
    };
    let delay = Duration::from_millis(300);
    let addr = support::start_with_write_delay(config(50), delay).await;
    let mut a = Raw::connect(addr).await;
    let mut b = Raw::connect(addr).await;
    let (h, _) = a.call(&create("/t", None, 0)).await;
    assert_eq!(h.err, 0);
    // a's setData holds the only permit until it is applied; b's read waits longer than
    // throttled_op_wait_time and is answered THROTTLEDOP without a body.
    let set = Request::SetData(SetDataRequest {
        path: Some("/t".into()),
        data: None,
        version: -1,
    });
    let a_xid = a.send(&set).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (h, body) = b.call(&get("/t", false)).await;
    assert_eq!((h.err, body.len()), (ErrorCode::ThrottledOp.code(), 0));
    let (h, _) = a.recv().await.unwrap();
    assert_eq!((h.xid, h.err), (a_xid, 0));
    // Without a queue the same read is served; pings are never THROTTLEDOP.
    assert_eq!(b.call(&get("/t", false)).await.0.err, 0);
    a.send(&set).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(b.call(&Request::Ping).await.0.err, 0);
    a.recv().await.unwrap();

    // With throttled_op_wait_time 0 the waiting read is simply served after the write.
    let addr = support::start_with_write_delay(config(0), delay).await;
    let mut a = Raw::connect(addr).await;
    let mut b = Raw::connect(addr).await;
    a.call(&create("/t", None, 0)).await;
    let started = std::time::Instant::now();
    a.send(&set).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (h, _) = b.call(&get("/t", false)).await;
    assert_eq!(h.err, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "b waited for the permit"
    );
    // A connection whose own writes hold every permit still makes progress.
    for _ in 0..5 {
        a.send(&set).await;
    }
    for _ in 0..5 {
        assert_eq!(a.recv().await.unwrap().0.err, 0);
    }
}

/// A client that has seen a zxid this server has not applied yet waits (a third of its
/// session timeout, at most 1 s) for apply to catch up; past that it is refused as ZooKeeper
/// refuses it: the connection closes without a reply.
#[tokio::test]
async fn a_client_ahead_of_the_server_waits_for_apply_then_is_refused() {
    let addr = start(config()).await;
    let mut a = Raw::connect(addr).await; // zxid 1: a's session
    let zero = Bytes::from_static(&[0; 16]);
    let waiting = tokio::spawn(Raw::connect_seen(addr, 0, zero.clone(), true, 2));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the client waits for zxid 2");
    assert_eq!(a.call(&create("/x", None, 0)).await.0.err, 0); // zxid 2
    let b = waiting
        .await
        .unwrap()
        .expect("accepted once zxid 2 is applied");
    assert_ne!(b.session_id, 0);

    let t = std::time::Instant::now();
    let refused = Raw::connect_seen(addr, 0, zero, true, 1 << 40).await;
    assert!(refused.is_none(), "a client far ahead is refused");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "refused after the bounded wait: {waited:?}"
    );
}

/// A reply goes to the connection that sent the request, as in ZooKeeper: a client that
/// reconnected with its session while a write of its old connection was in flight does not
/// get that write's reply on its new connection (in an ensemble the old connection may be
/// on another server, whose apply also produces the reply).
#[tokio::test]
async fn a_reply_goes_only_to_the_connection_that_sent_the_request() {
    let addr = support::start_with_write_delay(config(), Duration::from_millis(300)).await;
    let mut a = Raw::connect(addr).await;
    a.send(&create("/slow", None, 0)).await;
    let mut b = Raw::connect_with(addr, a.session_id, a.passwd.clone(), true)
        .await
        .expect("the session reconnects");
    let got = tokio::time::timeout(Duration::from_millis(800), b.recv()).await;
    assert!(got.is_err(), "the new connection got {got:?}");
    // The write itself was applied; the new connection's own requests are answered.
    assert_eq!(b.call(&get("/slow", false)).await.0.err, 0);
}

/// A new session that cannot be created (the write fails, as on a server that lost its
/// leader) closes the connection at once without a reply, so the client tries another server,
/// and leaves nothing behind: the server keeps taking connections.
#[tokio::test]
async fn a_session_that_cannot_be_created_closes_the_connection() {
    let (addr, backend) = support::start_with(config(), Duration::ZERO).await;
    backend
        .fail_writes
        .store(true, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..100 {
        let refused = tokio::time::timeout(
            Duration::from_secs(2),
            Raw::connect_with(addr, 0, Bytes::from_static(&[0; 16]), true),
        )
        .await
        .expect("answered at once");
        assert!(refused.is_none(), "no session, no reply");
    }
    backend
        .fail_writes
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let mut c = Raw::connect(addr).await;
    assert_eq!(c.call(&create("/after", None, 0)).await.0.err, 0);
}
