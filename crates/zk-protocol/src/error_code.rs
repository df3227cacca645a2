//! Error codes (`KeeperException.Code`).

use std::fmt;

/// A ZooKeeper error code as carried in `ReplyHeader.err`. The values are the Java client's
/// numbering (some third-party clients number the later codes differently; the Java numbering
/// is the protocol). Codes -1 to -99 are system errors, -100 and below API errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorCode {
    /// Everything is OK.
    Ok = 0,
    /// A system error (also the lower bound of the system-error range).
    SystemError = -1,
    /// A runtime inconsistency was found (also: the ops after a failed op in a multi).
    RuntimeInconsistency = -2,
    /// A data inconsistency was found.
    DataInconsistency = -3,
    /// The connection to the server was lost.
    ConnectionLoss = -4,
    /// Error while marshalling or unmarshalling data.
    MarshallingError = -5,
    /// Operation is unimplemented.
    Unimplemented = -6,
    /// Operation timeout.
    OperationTimeout = -7,
    /// Invalid arguments.
    BadArguments = -8,
    /// The session does not exist on the server.
    UnknownSession = -12,
    /// No quorum of the new configuration is connected and up to date with the leader.
    NewConfigNoQuorum = -13,
    /// Another reconfiguration is in progress.
    ReconfigInProgress = -14,
    /// An API error (also the upper bound of the API-error range).
    ApiError = -100,
    /// The node does not exist.
    NoNode = -101,
    /// Not authenticated.
    NoAuth = -102,
    /// Version conflict.
    BadVersion = -103,
    /// Ephemeral nodes may not have children.
    NoChildrenForEphemerals = -108,
    /// The node already exists.
    NodeExists = -110,
    /// The node has children.
    NotEmpty = -111,
    /// The session has been expired by the server.
    SessionExpired = -112,
    /// Invalid callback specified.
    InvalidCallback = -113,
    /// Invalid ACL specified.
    InvalidAcl = -114,
    /// Client authentication failed.
    AuthFailed = -115,
    /// Session moved to another server, so the operation is ignored.
    SessionMoved = -118,
    /// State-changing request passed to a read-only server.
    NotReadOnly = -119,
    /// Attempt to create an ephemeral node on a local session.
    EphemeralOnLocalSession = -120,
    /// Attempt to remove a non-existing watcher.
    NoWatcher = -121,
    /// Request not completed within the maximum allowed time.
    RequestTimeout = -122,
    /// Attempt to reconfigure while reconfiguration is disabled.
    ReconfigDisabled = -123,
    /// The session was closed because it did not authenticate with SASL as required.
    SessionClosedRequireSaslAuth = -124,
    /// Exceeded the quota set on the path.
    QuotaExceeded = -125,
    /// The operation was throttled and not executed.
    ThrottledOp = -127,
}

impl ErrorCode {
    /// Every code, for tables and exhaustive tests.
    pub const ALL: [ErrorCode; 32] = [
        ErrorCode::Ok,
        ErrorCode::SystemError,
        ErrorCode::RuntimeInconsistency,
        ErrorCode::DataInconsistency,
        ErrorCode::ConnectionLoss,
        ErrorCode::MarshallingError,
        ErrorCode::Unimplemented,
        ErrorCode::OperationTimeout,
        ErrorCode::BadArguments,
        ErrorCode::UnknownSession,
        ErrorCode::NewConfigNoQuorum,
        ErrorCode::ReconfigInProgress,
        ErrorCode::ApiError,
        ErrorCode::NoNode,
        ErrorCode::NoAuth,
        ErrorCode::BadVersion,
        ErrorCode::NoChildrenForEphemerals,
        ErrorCode::NodeExists,
        ErrorCode::NotEmpty,
        ErrorCode::SessionExpired,
        ErrorCode::InvalidCallback,
        ErrorCode::InvalidAcl,
        ErrorCode::AuthFailed,
        ErrorCode::SessionMoved,
        ErrorCode::NotReadOnly,
        ErrorCode::EphemeralOnLocalSession,
        ErrorCode::NoWatcher,
        ErrorCode::RequestTimeout,
        ErrorCode::ReconfigDisabled,
        ErrorCode::SessionClosedRequireSaslAuth,
        ErrorCode::QuotaExceeded,
        ErrorCode::ThrottledOp,
    ];

    /// Returns the code with this number, if there is one.
    pub fn from_i32(code: i32) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|e| *e as i32 == code)
    }

    /// Returns the code's number.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Returns the name of the Java enum constant (`KeeperException.Code`), e.g. `NONODE`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Ok => "OK",
            ErrorCode::SystemError => "SYSTEMERROR",
            ErrorCode::RuntimeInconsistency => "RUNTIMEINCONSISTENCY",
            ErrorCode::DataInconsistency => "DATAINCONSISTENCY",
            ErrorCode::ConnectionLoss => "CONNECTIONLOSS",
            ErrorCode::MarshallingError => "MARSHALLINGERROR",
            ErrorCode::Unimplemented => "UNIMPLEMENTED",
            ErrorCode::OperationTimeout => "OPERATIONTIMEOUT",
            ErrorCode::BadArguments => "BADARGUMENTS",
            ErrorCode::UnknownSession => "UNKNOWNSESSION",
            ErrorCode::NewConfigNoQuorum => "NEWCONFIGNOQUORUM",
            ErrorCode::ReconfigInProgress => "RECONFIGINPROGRESS",
            ErrorCode::ApiError => "APIERROR",
            ErrorCode::NoNode => "NONODE",
            ErrorCode::NoAuth => "NOAUTH",
            ErrorCode::BadVersion => "BADVERSION",
            ErrorCode::NoChildrenForEphemerals => "NOCHILDRENFOREPHEMERALS",
            ErrorCode::NodeExists => "NODEEXISTS",
            ErrorCode::NotEmpty => "NOTEMPTY",
            ErrorCode::SessionExpired => "SESSIONEXPIRED",
            ErrorCode::InvalidCallback => "INVALIDCALLBACK",
            ErrorCode::InvalidAcl => "INVALIDACL",
            ErrorCode::AuthFailed => "AUTHFAILED",
            ErrorCode::SessionMoved => "SESSIONMOVED",
            ErrorCode::NotReadOnly => "NOTREADONLY",
            ErrorCode::EphemeralOnLocalSession => "EPHEMERALONLOCALSESSION",
            ErrorCode::NoWatcher => "NOWATCHER",
            ErrorCode::RequestTimeout => "REQUESTTIMEOUT",
            ErrorCode::ReconfigDisabled => "RECONFIGDISABLED",
            ErrorCode::SessionClosedRequireSaslAuth => "SESSIONCLOSEDREQUIRESASLAUTH",
            ErrorCode::QuotaExceeded => "QUOTAEXCEEDED",
            ErrorCode::ThrottledOp => "THROTTLEDOP",
        }
    }

    /// Whether the code is in the system-error range (-1 to -99).
    pub fn is_system_error(self) -> bool {
        (-99..=-1).contains(&self.code())
    }

    /// Whether the code is in the API-error range (-100 and below).
    pub fn is_api_error(self) -> bool {
        self.code() <= -100
    }
}

impl TryFrom<i32> for ErrorCode {
    type Error = i32;

    fn try_from(code: i32) -> Result<Self, i32> {
        ErrorCode::from_i32(code).ok_or(code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins every value against `KeeperException.Code` of ZooKeeper 3.9.
    #[test]
    fn numbering_is_javas() {
        let expected = [
            (0, "OK"),
            (-1, "SYSTEMERROR"),
            (-2, "RUNTIMEINCONSISTENCY"),
            (-3, "DATAINCONSISTENCY"),
            (-4, "CONNECTIONLOSS"),
            (-5, "MARSHALLINGERROR"),
            (-6, "UNIMPLEMENTED"),
            (-7, "OPERATIONTIMEOUT"),
            (-8, "BADARGUMENTS"),
            (-12, "UNKNOWNSESSION"),
            (-13, "NEWCONFIGNOQUORUM"),
            (-14, "RECONFIGINPROGRESS"),
            (-100, "APIERROR"),
            (-101, "NONODE"),
            (-102, "NOAUTH"),
            (-103, "BADVERSION"),
            (-108, "NOCHILDRENFOREPHEMERALS"),
            (-110, "NODEEXISTS"),
            (-111, "NOTEMPTY"),
            (-112, "SESSIONEXPIRED"),
            (-113, "INVALIDCALLBACK"),
            (-114, "INVALIDACL"),
            (-115, "AUTHFAILED"),
            (-118, "SESSIONMOVED"),
            (-119, "NOTREADONLY"),
            (-120, "EPHEMERALONLOCALSESSION"),
            (-121, "NOWATCHER"),
            (-122, "REQUESTTIMEOUT"),
            (-123, "RECONFIGDISABLED"),
            (-124, "SESSIONCLOSEDREQUIRESASLAUTH"),
            (-125, "QUOTAEXCEEDED"),
            (-127, "THROTTLEDOP"),
        ];
        assert_eq!(expected.len(), ErrorCode::ALL.len());
        for (code, name) in expected {
            let e = ErrorCode::try_from(code).unwrap();
            assert_eq!(e.code(), code);
            assert_eq!(e.to_string(), name);
            assert_eq!(e.is_api_error(), code <= -100);
            assert_eq!(e.is_system_error(), (-99..=-1).contains(&code));
        }
        for unknown in [1, -9, -15, -116, -117, -126, -128] {
            assert_eq!(ErrorCode::try_from(unknown), Err(unknown));
        }
    }
}
