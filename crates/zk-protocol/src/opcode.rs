//! Operation codes (`ZooDefs.OpCode`).

/// A request's operation code. The numeric values are the protocol; never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum OpCode {
    /// A watch notification (never sent as a request).
    Notification = 0,
    /// Create a node.
    Create = 1,
    /// Delete a node.
    Delete = 2,
    /// Stat a node, optionally setting an exist/data watch.
    Exists = 3,
    /// Read a node's data and Stat.
    GetData = 4,
    /// Write a node's data.
    SetData = 5,
    /// Read a node's ACL.
    GetAcl = 6,
    /// Write a node's ACL.
    SetAcl = 7,
    /// List a node's children.
    GetChildren = 8,
    /// Catch this server up with the leader.
    Sync = 9,
    /// Keep the session alive (xid -2).
    Ping = 11,
    /// List a node's children and return its Stat.
    GetChildren2 = 12,
    /// Check a node's version (only inside a multi).
    Check = 13,
    /// An all-or-nothing transaction.
    Multi = 14,
    /// Create a node and return its Stat.
    Create2 = 15,
    /// Change the ensemble's membership.
    Reconfig = 16,
    /// Ask whether a watch is set.
    CheckWatches = 17,
    /// Remove a watch.
    RemoveWatches = 18,
    /// Create a container node.
    CreateContainer = 19,
    /// Delete a container node (issued by the server itself).
    DeleteContainer = 20,
    /// Create a node with a time to live.
    CreateTtl = 21,
    /// A batch of reads, not atomic.
    MultiRead = 22,
    /// Add authentication (xid -4).
    Auth = 100,
    /// Re-register watches after a reconnect (xid -8).
    SetWatches = 101,
    /// A SASL round.
    Sasl = 102,
    /// List this session's ephemeral nodes.
    GetEphemerals = 103,
    /// Count all descendants of a node.
    GetAllChildrenNumber = 104,
    /// Re-register watches, persistent ones included (xid -8).
    SetWatches2 = 105,
    /// Add a persistent or persistent-recursive watch.
    AddWatch = 106,
    /// Report the session's authenticated identities.
    WhoAmI = 107,
    /// Create a session (a transaction type only).
    CreateSession = -10,
    /// Close the session.
    CloseSession = -11,
    /// A failed operation inside a multi (a transaction type only).
    Error = -1,
}

impl OpCode {
    /// Every opcode, for tables and exhaustive tests.
    pub const ALL: [OpCode; 33] = [
        OpCode::Notification,
        OpCode::Create,
        OpCode::Delete,
        OpCode::Exists,
        OpCode::GetData,
        OpCode::SetData,
        OpCode::GetAcl,
        OpCode::SetAcl,
        OpCode::GetChildren,
        OpCode::Sync,
        OpCode::Ping,
        OpCode::GetChildren2,
        OpCode::Check,
        OpCode::Multi,
        OpCode::Create2,
        OpCode::Reconfig,
        OpCode::CheckWatches,
        OpCode::RemoveWatches,
        OpCode::CreateContainer,
        OpCode::DeleteContainer,
        OpCode::CreateTtl,
        OpCode::MultiRead,
        OpCode::Auth,
        OpCode::SetWatches,
        OpCode::Sasl,
        OpCode::GetEphemerals,
        OpCode::GetAllChildrenNumber,
        OpCode::SetWatches2,
        OpCode::AddWatch,
        OpCode::WhoAmI,
        OpCode::CreateSession,
        OpCode::CloseSession,
        OpCode::Error,
    ];

    /// Returns the opcode with this number, if there is one.
    pub fn from_i32(code: i32) -> Option<OpCode> {
        OpCode::ALL.iter().copied().find(|op| *op as i32 == code)
    }

    /// Returns the opcode's name as ZooKeeper's `Request.op2String` prints it.
    pub fn name(self) -> &'static str {
        match self {
            OpCode::Notification => "notification",
            OpCode::Create => "create",
            OpCode::Delete => "delete",
            OpCode::Exists => "exists",
            OpCode::GetData => "getData",
            OpCode::SetData => "setData",
            OpCode::GetAcl => "getACL",
            OpCode::SetAcl => "setACL",
            OpCode::GetChildren => "getChildren",
            OpCode::Sync => "sync",
            OpCode::Ping => "ping",
            OpCode::GetChildren2 => "getChildren2",
            OpCode::Check => "check",
            OpCode::Multi => "multi",
            OpCode::Create2 => "create2",
            OpCode::Reconfig => "reconfig",
            OpCode::CheckWatches => "checkWatches",
            OpCode::RemoveWatches => "removeWatches",
            OpCode::CreateContainer => "createContainer",
            OpCode::DeleteContainer => "deleteContainer",
            OpCode::CreateTtl => "createTtl",
            OpCode::MultiRead => "multiRead",
            OpCode::Auth => "auth",
            OpCode::SetWatches => "setWatches",
            OpCode::Sasl => "sasl",
            OpCode::GetEphemerals => "getEphemerals",
            OpCode::GetAllChildrenNumber => "getAllChildrenNumber",
            OpCode::SetWatches2 => "setWatches2",
            OpCode::AddWatch => "addWatch",
            OpCode::WhoAmI => "whoAmI",
            OpCode::CreateSession => "createSession",
            OpCode::CloseSession => "closeSession",
            OpCode::Error => "error",
        }
    }

    /// Whether ZooKeeper sends the operation through the quorum (`Request.isQuorum` for a
    /// global session): these change the tree or the session table and go through the log.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            OpCode::Create
                | OpCode::Create2
                | OpCode::CreateTtl
                | OpCode::CreateContainer
                | OpCode::Delete
                | OpCode::DeleteContainer
                | OpCode::SetAcl
                | OpCode::SetData
                | OpCode::Check
                | OpCode::Multi
                | OpCode::Reconfig
                | OpCode::Error
                | OpCode::CreateSession
                | OpCode::CloseSession
        )
    }
}

impl TryFrom<i32> for OpCode {
    type Error = i32;

    fn try_from(code: i32) -> Result<Self, i32> {
        OpCode::from_i32(code).ok_or(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins every value against `ZooDefs.OpCode` of ZooKeeper 3.9.
    #[test]
    fn numbering_is_zookeepers() {
        let expected = [
            (0, "notification"),
            (1, "create"),
            (2, "delete"),
            (3, "exists"),
            (4, "getData"),
            (5, "setData"),
            (6, "getACL"),
            (7, "setACL"),
            (8, "getChildren"),
            (9, "sync"),
            (11, "ping"),
            (12, "getChildren2"),
            (13, "check"),
            (14, "multi"),
            (15, "create2"),
            (16, "reconfig"),
            (17, "checkWatches"),
            (18, "removeWatches"),
            (19, "createContainer"),
            (20, "deleteContainer"),
            (21, "createTtl"),
            (22, "multiRead"),
            (100, "auth"),
            (101, "setWatches"),
            (102, "sasl"),
            (103, "getEphemerals"),
            (104, "getAllChildrenNumber"),
            (105, "setWatches2"),
            (106, "addWatch"),
            (107, "whoAmI"),
            (-10, "createSession"),
            (-11, "closeSession"),
            (-1, "error"),
        ];
        assert_eq!(expected.len(), OpCode::ALL.len());
        for (code, name) in expected {
            let op = OpCode::try_from(code).unwrap();
            assert_eq!(op as i32, code);
            assert_eq!(op.name(), name);
        }
        for unknown in [10, 23, 99, 108, -2, -12, i32::MAX] {
            assert_eq!(OpCode::try_from(unknown), Err(unknown));
        }
    }
}
