//! The client side of ferrokeeper: the listener, one task per connection, the handshake,
//! per-session ordering, reads, watches, session liveness and expiry, four-letter words.
//!
//! Owns: everything between a client socket and the replicated state — frames in, replies
//! and watch events out, in ZooKeeper's order; the watch registry (server-local, never
//! replicated); the touch table that expires quiet sessions.
//! Does not own: what a write does (`zk-datatree`, applied through consensus), how it is
//! replicated and stored (`zk-consensus`, `zk-storage`); it reaches them through [`Backend`].
//!
//! # Layout
//! - `backend`: the [`Backend`] seam (propose, read barrier, reads under the apply gate).
//! - `hub`: connections by session, watch registry, routing of apply results ([`Hub::on_applied`]).
//! - `server`: listener, connection limits, session tracker and expiry.
//! - `connection`: handshake and request handling for one connection.
//! - `password`: ZooKeeper's session passwords.
//! - `conns`: every open connection's counters (`stat`, `cons`).
//! - `auth`: addauth's built-in schemes (digest, ip).
//! - `sasl`: SASL DIGEST-MD5 with JAAS users.
//! - `fourlw`: four-letter words.
//! - `config`: settings with ZooKeeper's names and defaults.

mod auth;
mod backend;
mod config;
mod connection;
pub mod conns;
mod fourlw;
mod hub;
mod password;
pub mod sasl;
mod server;
mod watches;

pub use backend::{Backend, BackendError, LeaderQuorumStats, Pending, QuorumStats, TreeRead};
pub use config::{FourLetterWhitelist, SessionConfig};
pub use hub::{Hub, OUTBOX_BYTES_MAX, Outbound, Outbox, OutboxReceiver};
pub use password::session_password;
pub use server::{Server, Tracker};
pub use watches::{WatchKind, Watches};
