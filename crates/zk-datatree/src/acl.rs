//! ACLs as ZooKeeper 3.9 checks them: `ZooKeeperServer.checkACL`, `PrepRequestProcessor.fixupACL`
//! and the built-in schemes' `isValid` / `matches` (world, auth, digest, ip).

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use zk_protocol::ErrorCode;
use zk_protocol::jute::data::{ACL, Id};

/// An identity a connection authenticated as (`Request.authInfo`): `ip:<address>` always,
/// plus what `addauth` added. `super` (from the super digest) bypasses every check.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuthId {
    /// The scheme: `ip`, `digest`, `super`, `sasl`, ...
    pub scheme: String,
    /// The id within the scheme (for digest: `user:base64(sha1(user:password))`).
    pub id: String,
}

impl AuthId {
    /// Creates an auth id.
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Self {
        AuthId {
            scheme: scheme.into(),
            id: id.into(),
        }
    }
}

fn scheme(acl: &ACL) -> &str {
    acl.id.scheme.as_deref().unwrap_or_default()
}

fn id(acl: &ACL) -> &str {
    acl.id.id.as_deref().unwrap_or_default()
}

/// Parses an address as `IPAuthenticationProvider.addr2Bytes` does (dotted IPv4 or IPv6).
fn addr_bytes(s: &str) -> Option<Vec<u8>> {
    match s.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some(a.octets().to_vec()),
        IpAddr::V6(a) => Some(a.octets().to_vec()),
    }
}

/// `IPAuthenticationProvider.isValid`: an address, optionally `/bits` within its length.
fn ip_is_valid(expr: &str) -> bool {
    let mut parts = expr.splitn(2, '/');
    let Some(addr) = parts.next().and_then(addr_bytes) else {
        return false;
    };
    match parts.next() {
        None => true,
        Some(bits) => bits
            .parse::<i32>()
            .is_ok_and(|b| b >= 0 && b <= addr.len() as i32 * 8),
    }
}

/// `IPAuthenticationProvider.matches`: the client address within the ACL's prefix.
fn ip_matches(client: &str, expr: &str) -> bool {
    let mut parts = expr.splitn(2, '/');
    let Some(acl_addr) = parts.next().and_then(addr_bytes) else {
        return false;
    };
    let bits = match parts.next() {
        None => acl_addr.len() * 8,
        Some(b) => match b.parse::<usize>() {
            Ok(b) if b <= acl_addr.len() * 8 => b,
            _ => return false,
        },
    };
    let Some(remote) = addr_bytes(client) else {
        return false;
    };
    if remote.len() != acl_addr.len() {
        return false;
    }
    (0..bits).all(|i| {
        let mask = 0x80u8 >> (i % 8);
        remote[i / 8] & mask == acl_addr[i / 8] & mask
    })
}

/// `DigestAuthenticationProvider.isValid`: exactly one `:` separating two non-empty-ended parts
/// (Java's `split(":")` drops trailing empty strings).
fn digest_is_valid(id: &str) -> bool {
    let mut parts: Vec<&str> = id.split(':').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    parts.len() == 2
}

/// Whether a scheme has a provider here, and so may appear in an ACL.
fn scheme_is_known(scheme: &str) -> bool {
    matches!(scheme, "digest" | "ip" | "sasl")
}

/// Whether `auth` may use `perm` (a bit mask: any bit suffices) on a node with `acl`.
/// `ZooKeeperServer.checkACL`: super bypasses; an empty ACL allows everything.
pub fn check(acl: &[ACL], perm: i32, auth: &[AuthId]) -> Result<(), ErrorCode> {
    if acl.is_empty() || auth.iter().any(|a| a.scheme == "super") {
        return Ok(());
    }
    for entry in acl.iter().filter(|a| a.perms & perm != 0) {
        let (s, i) = (scheme(entry), id(entry));
        if s == "world" && i == "anyone" {
            return Ok(());
        }
        let matched = auth.iter().filter(|a| a.scheme == s).any(|a| match s {
            "ip" => ip_matches(&a.id, i),
            _ => a.id == i,
        });
        if matched {
            return Ok(());
        }
    }
    Err(ErrorCode::NoAuth)
}

/// `PrepRequestProcessor.fixupACL`: the ACL a create or setACL stores. Duplicates go, `auth`
/// becomes every authenticated id of the connection (ip does not count), unknown schemes and
/// malformed ids are INVALIDACL, and so is an empty list.
///
/// The ACL most clients send, `world:anyone` with every permission (`OPEN_ACL_UNSAFE`), is one
/// list shared by every node that has it, so a create allocates nothing for its ACL.
pub fn fixup(acl: Option<&[ACL]>, auth: &[AuthId]) -> Result<Arc<[ACL]>, ErrorCode> {
    static OPEN: LazyLock<Arc<[ACL]>> = LazyLock::new(|| {
        Arc::new([ACL {
            perms: zk_protocol::perms::ALL,
            id: Id {
                scheme: Some("world".into()),
                id: Some("anyone".into()),
            },
        }])
    });
    if let Some([only]) = acl
        && only == &OPEN[0]
    {
        return Ok(Arc::clone(&OPEN));
    }
    let mut unique: Vec<ACL> = Vec::new();
    for a in acl.unwrap_or_default() {
        if !unique.contains(a) {
            unique.push(a.clone());
        }
    }
    if unique.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out = Vec::with_capacity(unique.len());
    for a in unique {
        let (s, i) = (scheme(&a), id(&a));
        if s == "world" && i == "anyone" {
            out.push(a);
        } else if s == "auth" {
            let mut any = false;
            for cid in auth
                .iter()
                .filter(|c| matches!(c.scheme.as_str(), "digest" | "sasl"))
            {
                any = true;
                out.push(ACL {
                    perms: a.perms,
                    id: Id {
                        scheme: Some(cid.scheme.clone()),
                        id: Some(cid.id.clone()),
                    },
                });
            }
            if !any {
                return Err(ErrorCode::InvalidAcl);
            }
        } else {
            let valid = scheme_is_known(s)
                && match s {
                    "digest" => digest_is_valid(i),
                    "ip" => ip_is_valid(i),
                    _ => true,
                };
            if !valid {
                return Err(ErrorCode::InvalidAcl);
            }
            out.push(a);
        }
    }
    Ok(out.into())
}

/// getACL without ADMIN permission: digest ids lose their hash (`user:x`), as ZooKeeper masks
/// them since CVE-2019-0201.
pub fn mask_digests(acl: &[ACL]) -> Vec<ACL> {
    acl.iter()
        .map(|a| {
            if scheme(a) != "digest" {
                return a.clone();
            }
            let user = id(a).split(':').next().unwrap_or_default();
            ACL {
                perms: a.perms,
                id: Id {
                    scheme: Some("digest".into()),
                    id: Some(format!("{user}:x")),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(perms: i32, scheme: &str, id: &str) -> ACL {
        ACL {
            perms,
            id: Id {
                scheme: Some(scheme.into()),
                id: Some(id.into()),
            },
        }
    }

    #[test]
    fn checks_follow_zookeeper() {
        let ip = [AuthId::new("ip", "127.0.0.1")];
        let alice = [
            AuthId::new("ip", "127.0.0.1"),
            AuthId::new("digest", "alice:h"),
        ];
        let only_alice = [acl(31, "digest", "alice:h")];
        assert_eq!(check(&only_alice, 1, &ip), Err(ErrorCode::NoAuth));
        assert_eq!(check(&only_alice, 1, &alice), Ok(()));
        assert_eq!(
            check(&[acl(1, "world", "anyone")], 2, &ip),
            Err(ErrorCode::NoAuth)
        );
        assert_eq!(check(&[acl(3, "world", "anyone")], 2, &ip), Ok(()));
        assert_eq!(check(&[acl(31, "ip", "127.0.0.0/8")], 1, &ip), Ok(()));
        assert_eq!(
            check(&[acl(31, "ip", "10.0.0.0/8")], 1, &ip),
            Err(ErrorCode::NoAuth)
        );
        assert_eq!(check(&only_alice, 16, &[AuthId::new("super", "")]), Ok(()));
        assert_eq!(check(&[], 16, &ip), Ok(()));
    }

    #[test]
    fn fixup_follows_zookeeper() {
        let alice = [
            AuthId::new("ip", "127.0.0.1"),
            AuthId::new("digest", "alice:h"),
        ];
        assert_eq!(fixup(Some(&[]), &alice), Err(ErrorCode::InvalidAcl));
        assert_eq!(fixup(None, &alice), Err(ErrorCode::InvalidAcl));
        let dup = [acl(31, "world", "anyone"), acl(31, "world", "anyone")];
        assert_eq!(fixup(Some(&dup), &alice).unwrap().len(), 1);
        assert_eq!(
            fixup(Some(&[acl(5, "auth", "")]), &alice).unwrap()[..],
            [acl(5, "digest", "alice:h")]
        );
        assert_eq!(
            fixup(Some(&[acl(5, "auth", "")]), &alice[..1]),
            Err(ErrorCode::InvalidAcl),
            "ip alone does not count for the auth scheme"
        );
        for bad in [
            acl(1, "digest", "nocolon"),
            acl(1, "ip", "300.1.1.1"),
            acl(1, "ip", "1.2.3.4/33"),
            acl(1, "world", "someone"),
            acl(1, "nope", "x"),
        ] {
            assert_eq!(
                fixup(Some(std::slice::from_ref(&bad)), &alice),
                Err(ErrorCode::InvalidAcl),
                "{bad:?}"
            );
        }
        assert!(fixup(Some(&[acl(1, "ip", "::1/128")]), &alice).is_ok());
        // The open ACL is shared; the same entry with other permissions is a list of its own.
        let open = [acl(31, "world", "anyone")];
        let (a, b) = (fixup(Some(&open), &[]), fixup(Some(&open), &alice));
        assert!(Arc::ptr_eq(a.as_ref().unwrap(), b.as_ref().unwrap()));
        assert_eq!(a.unwrap()[..], open);
        assert_eq!(
            fixup(Some(&[acl(1, "world", "anyone")]), &[]).unwrap()[..],
            [acl(1, "world", "anyone")]
        );
        assert_eq!(
            mask_digests(&[acl(1, "digest", "bob:hash")]),
            vec![acl(1, "digest", "bob:x")]
        );
    }
}
