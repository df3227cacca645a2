//! `addauth` with ZooKeeper's built-in schemes, per connection as in ZooKeeper.
//!
//! Every connection starts authenticated as `ip:<client address>`. `digest` adds
//! `digest:<user>:base64(sha1(<user>:<password>))` (`DigestAuthenticationProvider`); `ip`
//! adds the address again. Any other scheme fails, and ZooKeeper then closes the connection.
//! ACL checks with these ids come with issue 4.

use base64::Engine as _;
use sha1::{Digest, Sha1};

pub use zk_datatree::AuthId;

/// `DigestAuthenticationProvider.generateDigest`: `user:base64(sha1("user:password"))`.
pub fn digest(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or_default();
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Handles an auth packet: returns the ids to add, or `None` for AUTHFAILED. A digest equal
/// to the configured super digest also makes the connection `super`, which bypasses ACLs.
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    peer_ip: &str,
    super_digest: Option<&str>,
) -> Option<Vec<AuthId>> {
    match scheme {
        "digest" => {
            let d = digest(&String::from_utf8_lossy(auth));
            let mut ids = Vec::with_capacity(2);
            if super_digest == Some(d.as_str()) {
                ids.push(AuthId::new("super", ""));
            }
            ids.push(AuthId::new("digest", d));
            Some(ids)
        }
        "ip" => Some(vec![AuthId::new("ip", peer_ip)]),
        _ => None,
    }
}

/// The user name `whoAmI` reports for an id (`AuthenticationProvider.getUserName`).
pub fn user_name(scheme: &str, id: &str) -> String {
    match scheme {
        "digest" => id.split(':').next().unwrap_or_default().to_string(),
        _ => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_zookeeper() {
        // ZooKeeper's documented super:test digest (verified with generateDigest).
        assert_eq!(digest("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
        assert_eq!(authenticate("foo", b"x", "127.0.0.1", None), None);
        let su = authenticate(
            "digest",
            b"super:test",
            "127.0.0.1",
            Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU="),
        );
        assert_eq!(su.unwrap()[0], AuthId::new("super", ""));
        assert_eq!(user_name("digest", "alice:abc="), "alice");
    }
}
