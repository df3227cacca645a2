//! SASL DIGEST-MD5 (RFC 2831) over ZooKeeper's `sasl` op, as a ZooKeeper server answers it with
//! the users of a JAAS `Server` section (`DigestLoginModule`'s `user_NAME="password"`).
//!
//! Exchange: the client sends an empty token; the server challenges with its realm
//! (`zk-sasl-md5`) and a nonce; the client answers with a digest response for digest-uri
//! `zookeeper/zk-sasl-md5`; the server checks it and sends `rspauth`. The connection is then
//! authenticated as `sasl:<user>`. Any failure closes the connection, as ZooKeeper does.

use std::collections::BTreeMap;
use std::io::Read as _;

use md5::{Digest, Md5};

/// ZooKeeper's SASL server name, the DIGEST-MD5 realm.
pub const REALM: &str = "zk-sasl-md5";
/// The digest-uri a client must use.
pub const DIGEST_URI: &str = "zookeeper/zk-sasl-md5";

/// Reads the users of the `Server` section of a JAAS configuration file.
pub fn jaas_users(text: &str) -> BTreeMap<String, String> {
    let mut users = BTreeMap::new();
    let Some(start) = text.find("Server") else {
        return users;
    };
    let section = &text[start..];
    let body = section.split_once('{').map_or("", |(_, b)| b);
    let body = body.split_once("};").map_or(body, |(b, _)| b);
    for token in body.split_whitespace() {
        let token = token.trim_end_matches(';');
        if let Some((key, value)) = token.split_once('=')
            && let Some(user) = key.strip_prefix("user_")
        {
            users.insert(user.to_string(), value.trim_matches('"').to_string());
        }
    }
    users
}

/// The state of one connection's exchange.
#[derive(Debug)]
pub enum Sasl {
    /// The challenge was sent with this nonce.
    Challenged {
        /// The server nonce.
        nonce: String,
    },
    /// Authenticated.
    Done,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Returns a fresh server nonce.
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 24];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    assert!(ok.is_ok(), "reading /dev/urandom for a SASL nonce");
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
}

/// The server's first challenge.
pub fn challenge(nonce: &str) -> String {
    format!("realm=\"{REALM}\",nonce=\"{nonce}\",charset=utf-8,algorithm=md5-sess")
}

/// Parses `key=value` / `key="quoted"` pairs (RFC 2831 §7.1).
fn parse(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
        }
        out.insert(key.trim().to_string(), value);
    }
}

fn response_digest(
    password: &str,
    f: &BTreeMap<String, String>,
    nonce: &str,
    a2: &str,
) -> Option<String> {
    let get = |k: &str| f.get(k).map(String::as_str);
    let (user, cnonce, nc) = (get("username")?, get("cnonce")?, get("nc")?);
    let qop = get("qop").unwrap_or("auth");
    let key = md5(&[
        user.as_bytes(),
        b":",
        REALM.as_bytes(),
        b":",
        password.as_bytes(),
    ]);
    let mut a1 = vec![&key[..], b":", nonce.as_bytes(), b":", cnonce.as_bytes()];
    if let Some(authzid) = get("authzid") {
        a1.extend([&b":"[..], authzid.as_bytes()]);
    }
    let ha1 = hex(&md5(&a1));
    let ha2 = hex(&md5(&[a2.as_bytes()]));
    Some(hex(&md5(&[
        ha1.as_bytes(),
        b":",
        nonce.as_bytes(),
        b":",
        nc.as_bytes(),
        b":",
        cnonce.as_bytes(),
        b":",
        qop.as_bytes(),
        b":",
        ha2.as_bytes(),
    ])))
}

/// Checks a client's digest response; returns the user and the `rspauth` token, or `None`
/// when authentication fails.
pub fn verify(
    response: &[u8],
    nonce: &str,
    users: &BTreeMap<String, String>,
) -> Option<(String, String)> {
    let f = parse(std::str::from_utf8(response).ok()?);
    let user = f.get("username")?;
    let password = users.get(user)?;
    let same = |k: &str, want: &str| f.get(k).is_some_and(|v| v == want);
    if !same("nonce", nonce)
        || !same("digest-uri", DIGEST_URI)
        || f.get("realm").is_some_and(|r| r != REALM)
        || f.get("qop").is_some_and(|q| q != "auth")
    {
        return None;
    }
    let expected = response_digest(password, &f, nonce, &format!("AUTHENTICATE:{DIGEST_URI}"))?;
    if f.get("response")? != &expected {
        return None;
    }
    let rspauth = response_digest(password, &f, nonce, &format!(":{DIGEST_URI}"))?;
    Some((user.clone(), format!("rspauth={rspauth}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jaas_server_users() {
        let users = jaas_users(
            "Client { x required; };\nServer {\n org.apache.zookeeper.server.auth.DigestLoginModule required\n user_super=\"super_secret\"\n user_jaasuser=\"jaas_password\";\n};\n",
        );
        assert_eq!(
            users.get("jaasuser").map(String::as_str),
            Some("jaas_password")
        );
        assert_eq!(users.len(), 2);
    }

    /// The client's side is computed with the same digest function here; kazoo's SASL tests
    /// (compat-tests) check interoperability with a real client.
    #[test]
    fn accepts_a_correct_response_and_refuses_a_wrong_password() {
        let users = jaas_users("Server { x required user_u=\"pw\"; };");
        let nonce = "abc";
        let client = |password: &str| {
            let f: BTreeMap<String, String> = [
                ("username", "u"),
                ("cnonce", "xyz"),
                ("nc", "00000001"),
                ("qop", "auth"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let r = response_digest(password, &f, nonce, &format!("AUTHENTICATE:{DIGEST_URI}"))
                .unwrap();
            format!(
                "qop=auth,realm=\"{REALM}\",username=\"u\",nonce=\"{nonce}\",cnonce=\"xyz\",nc=00000001,digest-uri=\"{DIGEST_URI}\",response={r}"
            )
        };
        let (user, rspauth) = verify(client("pw").as_bytes(), nonce, &users).unwrap();
        assert_eq!(user, "u");
        assert!(rspauth.starts_with("rspauth="));
        assert!(verify(client("wrong").as_bytes(), nonce, &users).is_none());
        assert!(verify(client("pw").as_bytes(), "other-nonce", &users).is_none());
        assert!(
            parse(&challenge("n"))
                .get("realm")
                .is_some_and(|r| r == REALM)
        );
    }
}
