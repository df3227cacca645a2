//! Create modes (`CreateMode`) and the `ephemeralOwner` encodings of special nodes.

use crate::ErrorCode;

/// How a node is created: the `flags` of a create request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum CreateMode {
    /// An ordinary node.
    Persistent = 0,
    /// Deleted when its session ends.
    Ephemeral = 1,
    /// A persistent node whose name gets the parent's sequence suffix.
    PersistentSequential = 2,
    /// An ephemeral node whose name gets the parent's sequence suffix.
    EphemeralSequential = 3,
    /// Deleted by the server once it had children and has none left.
    Container = 4,
    /// Deleted by the server when unmodified for its TTL and childless.
    PersistentWithTtl = 5,
    /// A TTL node whose name gets the parent's sequence suffix.
    PersistentSequentialWithTtl = 6,
}

/// `ephemeralOwner` of a container node (`Long.MIN_VALUE`).
pub const CONTAINER_EPHEMERAL_OWNER: i64 = i64::MIN;

/// The high byte of a TTL node's `ephemeralOwner` (`0xFF`); the low 40 bits hold the TTL.
pub const TTL_OWNER_PREFIX: i64 = 0xFF00_0000_0000_0000_u64 as i64;

/// The largest TTL in milliseconds (2^40 - 1).
pub const MAX_TTL_MS: i64 = 0x0000_00FF_FFFF_FFFF;

impl CreateMode {
    /// Converts a create request's flags, as `CreateMode.fromFlag(int)` does: an unknown flag is
    /// BADARGUMENTS.
    pub fn from_flags(flags: i32) -> Result<CreateMode, ErrorCode> {
        Ok(match flags {
            0 => CreateMode::Persistent,
            1 => CreateMode::Ephemeral,
            2 => CreateMode::PersistentSequential,
            3 => CreateMode::EphemeralSequential,
            4 => CreateMode::Container,
            5 => CreateMode::PersistentWithTtl,
            6 => CreateMode::PersistentSequentialWithTtl,
            _ => return Err(ErrorCode::BadArguments),
        })
    }

    /// Whether the node dies with its session.
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    /// Whether the node's name gets a sequence suffix.
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    /// Whether the node is a container.
    pub fn is_container(self) -> bool {
        self == CreateMode::Container
    }

    /// Whether the node has a time to live.
    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_and_unknown_flags_are_bad_arguments() {
        for flags in 0..=6 {
            assert_eq!(CreateMode::from_flags(flags).unwrap() as i32, flags);
        }
        assert_eq!(CreateMode::from_flags(7), Err(ErrorCode::BadArguments));
        assert_eq!(CreateMode::from_flags(-1), Err(ErrorCode::BadArguments));
        assert!(CreateMode::EphemeralSequential.is_ephemeral());
        assert!(CreateMode::EphemeralSequential.is_sequential());
        assert!(!CreateMode::Container.is_ephemeral());
        assert!(CreateMode::PersistentSequentialWithTtl.is_ttl());
        assert_eq!(TTL_OWNER_PREFIX as u64, 0xFF00_0000_0000_0000);
    }
}
