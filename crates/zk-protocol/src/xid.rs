//! Special xids (`ClientCnxn`): requests and replies that are not numbered by the client.

/// A watch notification from the server: `ReplyHeader(-1, zxid, 0)` + `WatcherEvent`.
pub const NOTIFICATION: i32 = -1;
/// A ping and its reply.
pub const PING: i32 = -2;
/// An `auth` packet and its reply.
pub const AUTH: i32 = -4;
/// `setWatches` / `setWatches2` after a reconnect, and their reply.
pub const SET_WATCHES: i32 = -8;
