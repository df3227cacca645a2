//! Session passwords, derived exactly as ZooKeeper derives them.
//!
//! `ZooKeeperServer.generatePasswd` seeds `java.util.Random` with `sessionId ^ 0xB3415C00` and
//! takes 16 bytes. The constant is public, so the password is not a secret in ZooKeeper either;
//! what matters is that any server can check a reconnect without asking anyone, and that a
//! client sees the same bytes it would see from ZooKeeper.

/// ZooKeeper's `superSecret`.
const SUPER_SECRET: i64 = 0xB341_5C00;

/// `java.util.Random`: a 48-bit linear congruential generator.
struct JavaRandom(i64);

impl JavaRandom {
    const MULTIPLIER: i64 = 0x5_DEEC_E66D;
    const MASK: i64 = (1 << 48) - 1;

    fn new(seed: i64) -> Self {
        JavaRandom((seed ^ Self::MULTIPLIER) & Self::MASK)
    }

    fn next(&mut self, bits: u32) -> i32 {
        self.0 = (self.0.wrapping_mul(Self::MULTIPLIER).wrapping_add(0xB)) & Self::MASK;
        (self.0 >> (48 - bits)) as i32
    }

    /// `Random.nextBytes`: each `nextInt()` gives up to 4 bytes, low byte first.
    fn next_bytes(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(4) {
            let mut rnd = self.next(32);
            for b in chunk {
                *b = rnd as u8;
                rnd >>= 8;
            }
        }
    }
}

/// Returns the 16-byte password of a session.
pub fn session_password(session_id: i64) -> [u8; 16] {
    let mut out = [0; 16];
    JavaRandom::new(session_id ^ SUPER_SECRET).next_bytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_java_util_random() {
        // new java.util.Random(42).nextInt() == -1170105035 (a well-known value).
        assert_eq!(JavaRandom::new(42).next(32), -1_170_105_035);
        let mut b = [0u8; 4];
        JavaRandom::new(42).next_bytes(&mut b);
        assert_eq!(i32::from_le_bytes(b), -1_170_105_035);
        assert_ne!(session_password(1), session_password(2));
        assert_eq!(session_password(7), session_password(7));
    }
}
