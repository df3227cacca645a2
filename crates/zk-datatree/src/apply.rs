//! Apply: one committed command, evaluated against the tree exactly as ZooKeeper's
//! `PrepRequestProcessor` (checks, in its order) and `DataTree.processTxn` (effects) would.

use std::sync::Arc;

use bytes::Bytes;
use zk_protocol::jute::data::{ACL, Stat};
use zk_protocol::jute::proto::{
    CheckVersionRequest, CreateRequest, DeleteRequest, SetACLRequest, SetDataRequest,
};
use zk_protocol::multi::{MultiOp, MultiResult};
use zk_protocol::path::validate_path;
use zk_protocol::watch::EventType;
use zk_protocol::{
    CONTAINER_EPHEMERAL_OWNER, CreateMode, ErrorCode, MAX_TTL_MS, OpCode, Request,
    TTL_OWNER_PREFIX, perms,
};

use crate::acl::{self, AuthId};
use crate::node::Node;
use crate::quota;
use crate::store::{Journal, Session, TreeStore, split_parent};

/// A command as it is carried in the log. Apply reads nothing but the tree and this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The leader's clock when it proposed the command (ctime, mtime).
    pub time_ms: i64,
    /// The session the command belongs to.
    pub session_id: i64,
    /// The client's xid, so that the server holding the connection can route the reply.
    pub xid: i32,
    /// The connection's authenticated ids at the time of the request (ACL checks at apply).
    pub auth: Arc<[AuthId]>,
    /// Settings of the proposing server that change what apply does.
    pub features: Features,
    /// What to do.
    pub op: Op,
}

impl Command {
    /// A command that no client request carries — opening or closing a session, the reaper's
    /// deletes: no authenticated ids, default features; `time_ms` is stamped when proposed.
    pub fn internal(session_id: i64, xid: i32, op: Op) -> Command {
        Command {
            time_ms: 0,
            session_id,
            xid,
            auth: Default::default(),
            features: Features::default(),
            op,
        }
    }
}

/// Settings that change what apply does. They travel in each command, so that every replica
/// decides as the proposing server did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// `zookeeper.extendedTypesEnabled`: TTL nodes may be created.
    pub extended_types: bool,
    /// `reconfigEnabled`: reconfig is answered instead of refused with RECONFIGDISABLED.
    pub reconfig_enabled: bool,
    /// `zookeeper.enforceQuota`: a create or setData beyond a quota's hard limit fails with
    /// QUOTAEXCEEDED.
    pub enforce_quota: bool,
}

/// The operations that go through the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A client write request.
    Request(Request),
    /// Open a session; its id is derived from the entry's zxid and the server id.
    CreateSession {
        /// The negotiated timeout.
        timeout_ms: i32,
        /// The id (1..=254) of the server that holds the connection.
        server_id: u8,
    },
    /// Close `Command::session_id` (client close or expiry): its ephemerals are deleted.
    CloseSession,
    /// Delete an empty container that had children, or an empty TTL node unmodified for longer
    /// than its TTL (the leader's reaper, ZooKeeper's `ContainerManager`). The conditions are
    /// checked again at apply with the command's time, so a stale decision deletes nothing.
    Reap {
        /// The container or TTL node.
        path: String,
    },
    /// The end of an ensemble's `reconfig` (the membership change itself went through
    /// consensus before it): the new configuration's server lines, each ending with a
    /// newline, become `/zookeeper/config`'s data with `version=<this zxid in hex>` after
    /// them; or the error the leader found, answered with this zxid (ZooKeeper's error txn).
    Configure(Result<String, ErrorCode>),
}

/// A watch trigger produced by apply: the event fires the watches set on `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// The node whose watches fire.
    pub path: String,
    /// The event type they receive.
    pub event: EventType,
    /// That node's ACL: ZooKeeper 3.9 delivers an event only to watchers with READ on it.
    pub acl: Arc<[ACL]>,
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The command failed with this code and changed nothing.
    Error(ErrorCode),
    /// A node was created (its actual path, sequence suffix included, and its Stat).
    Created {
        /// The created path.
        path: String,
        /// The new node's Stat.
        stat: Stat,
    },
    /// A node was deleted.
    Deleted,
    /// A node's data was set.
    DataSet(Stat),
    /// A node's ACL was set.
    AclSet(Stat),
    /// A multi ran (all ops applied, or none, with ZooKeeper's per-op results).
    Multi(Vec<MultiResult>),
    /// A session was opened.
    SessionCreated {
        /// The new session's id.
        session_id: i64,
    },
    /// A session was closed.
    SessionClosed,
    /// `/zookeeper/config` was rewritten by a reconfig: its data and Stat.
    Configured {
        /// The configuration text.
        data: Bytes,
        /// The node's Stat.
        stat: Stat,
    },
}

/// The result of applying one command: the outcome and the watch triggers, in the order
/// ZooKeeper fires them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The outcome.
    pub outcome: Outcome,
    /// Watch triggers.
    pub triggers: Vec<Trigger>,
}

/// Derives a session id from the zxid of its `CreateSession` entry and the server id, as
/// ARCHITECTURE.md describes: the server id in the high byte (never 0xff), the zxid below.
pub fn session_id_for(zxid: i64, server_id: u8) -> i64 {
    assert!((1..=254).contains(&server_id), "server ids are 1..=254");
    (i64::from(server_id) << 56) | (zxid & 0x00FF_FFFF_FFFF_FFFF)
}

/// Paths that can never be deleted (`ZKDatabase.isSpecialPath`).
fn is_special_path(path: &str) -> bool {
    matches!(
        path,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

/// Checks the expected version (`PrepRequestProcessor.checkAndIncVersion`): -1 matches any.
fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// The parent of a path as `validatePathForCreate` / `getParentPathAndValidate` find it:
/// everything before the last `/`; no `/` or a NUL character is BADARGUMENTS.
fn parent_for_write(path: &str) -> Result<&str, ErrorCode> {
    if path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    match path.rfind('/') {
        None => Err(ErrorCode::BadArguments),
        Some(0) => Ok("/"),
        Some(i) => Ok(&path[..i]),
    }
}

/// Fails with SESSIONEXPIRED unless the session is open (`SessionTracker.checkSession`).
fn check_session<S: TreeStore + ?Sized>(store: &S, session_id: i64) -> Result<(), ErrorCode> {
    store
        .session(session_id)
        .map(|_| ())
        .ok_or(ErrorCode::SessionExpired)
}

/// Per-op context shared by the write ops.
struct Ctx<'t> {
    zxid: i64,
    time_ms: i64,
    session_id: i64,
    auth: &'t [AuthId],
    features: Features,
    triggers: &'t mut Vec<Trigger>,
}

fn create<S: TreeStore + ?Sized>(
    store: &mut S,
    ctx: &mut Ctx<'_>,
    opcode: OpCode,
    req: &CreateRequest,
    ttl: i64,
) -> Result<(String, Stat), ErrorCode> {
    let mode = CreateMode::from_flags(req.flags)?;
    // PrepRequestProcessor.validateCreateRequest: TTL modes need
    // zookeeper.extendedTypesEnabled, then EphemeralType.validateTTL.
    if mode.is_ttl() && !ctx.features.extended_types {
        return Err(ErrorCode::Unimplemented);
    }
    let ttl_ok = if mode.is_ttl() {
        ttl > 0 && ttl <= MAX_TTL_MS
    } else {
        ttl < 0
    };
    if !ttl_ok {
        return Err(ErrorCode::BadArguments);
    }
    check_session(store, ctx.session_id)?;
    let path = req.path.as_deref().ok_or(ErrorCode::BadArguments)?;
    let parent_path = parent_for_write(path)?;
    let acl = acl::fixup(req.acl.as_deref(), ctx.auth)?;
    let mut parent = store.node(parent_path).ok_or(ErrorCode::NoNode)?;
    acl::check(&parent.acl, perms::CREATE, ctx.auth)?;
    let path = if mode.is_sequential() {
        format!("{path}{:010}", parent.cversion)
    } else {
        path.to_string()
    };
    validate_path(&path, false).map_err(|_| ErrorCode::BadArguments)?;
    if store.node(&path).is_some() {
        return Err(ErrorCode::NodeExists);
    }
    if parent.owner_session().is_some() {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    let bytes = req.data.as_ref().map_or(0, |d| d.len() as i64);
    if ctx.features.enforce_quota {
        quota::check(store, &path, 1, bytes)?;
    }
    let ephemeral_owner = if opcode == OpCode::CreateContainer {
        CONTAINER_EPHEMERAL_OWNER
    } else if mode.is_ttl() {
        TTL_OWNER_PREFIX | ttl
    } else if mode.is_ephemeral() {
        ctx.session_id
    } else {
        0
    };
    let node = Node {
        czxid: ctx.zxid,
        mzxid: ctx.zxid,
        ctime: ctx.time_ms,
        mtime: ctx.time_ms,
        pzxid: ctx.zxid,
        ephemeral_owner,
        data: req.data.clone(),
        acl,
        ..Node::default()
    };
    let stat = node.stat();
    let (node_acl, parent_acl) = (node.acl.clone(), parent.acl.clone());
    store.put_node(&path, node);
    parent.cversion = parent.cversion.wrapping_add(1);
    parent.num_children += 1;
    parent.pzxid = ctx.zxid;
    store.put_node(parent_path, parent);
    quota::on_create(store, &path);
    quota::on_change(store, &path, 1, bytes);
    ctx.triggers.push(Trigger {
        path: path.clone(),
        event: EventType::NodeCreated,
        acl: node_acl,
    });
    ctx.triggers.push(Trigger {
        path: parent_path.to_string(),
        event: EventType::NodeChildrenChanged,
        acl: parent_acl,
    });
    Ok((path, stat))
}

fn delete<S: TreeStore + ?Sized>(
    store: &mut S,
    ctx: &mut Ctx<'_>,
    req: &DeleteRequest,
) -> Result<(), ErrorCode> {
    check_session(store, ctx.session_id)?;
    let path = req.path.as_deref().ok_or(ErrorCode::BadArguments)?;
    let parent_path = parent_for_write(path)?;
    if is_special_path(path) {
        return Err(ErrorCode::BadArguments);
    }
    let parent = store.node(parent_path).ok_or(ErrorCode::NoNode)?;
    acl::check(&parent.acl, perms::DELETE, ctx.auth)?;
    let node = store.node(path).ok_or(ErrorCode::NoNode)?;
    check_version(node.version, req.version)?;
    if node.num_children > 0 {
        return Err(ErrorCode::NotEmpty);
    }
    remove_child(store, ctx, parent_path, path)
}

fn set_data<S: TreeStore + ?Sized>(
    store: &mut S,
    ctx: &mut Ctx<'_>,
    req: &SetDataRequest,
) -> Result<Stat, ErrorCode> {
    check_session(store, ctx.session_id)?;
    let path = req.path.as_deref().ok_or(ErrorCode::BadArguments)?;
    validate_path(path, false).map_err(|_| ErrorCode::BadArguments)?;
    let mut node = store.node(path).ok_or(ErrorCode::NoNode)?;
    acl::check(&node.acl, perms::WRITE, ctx.auth)?;
    let len = |d: &Option<Bytes>| d.as_ref().map_or(0, |d| d.len() as i64);
    let bytes_diff = len(&req.data) - len(&node.data);
    if ctx.features.enforce_quota {
        quota::check(store, path, 0, bytes_diff)?;
    }
    node.version = check_version(node.version, req.version)?;
    node.data = req.data.clone();
    node.mzxid = ctx.zxid;
    node.mtime = ctx.time_ms;
    let stat = node.stat();
    let acl = node.acl.clone();
    store.put_node(path, node);
    quota::on_change(store, path, 0, bytes_diff);
    ctx.triggers.push(Trigger {
        path: path.to_string(),
        event: EventType::NodeDataChanged,
        acl,
    });
    Ok(stat)
}

fn check<S: TreeStore + ?Sized>(
    store: &S,
    ctx: &Ctx<'_>,
    req: &CheckVersionRequest,
) -> Result<(), ErrorCode> {
    check_session(store, ctx.session_id)?;
    let path = req.path.as_deref().ok_or(ErrorCode::BadArguments)?;
    validate_path(path, false).map_err(|_| ErrorCode::BadArguments)?;
    let node = store.node(path).ok_or(ErrorCode::NoNode)?;
    acl::check(&node.acl, perms::READ, ctx.auth)?;
    check_version(node.version, req.version).map(|_| ())
}

/// setACL: path, ACL, node, ADMIN on it, then the ACL version (`PrepRequestProcessor`).
fn set_acl<S: TreeStore + ?Sized>(
    store: &mut S,
    ctx: &mut Ctx<'_>,
    req: &SetACLRequest,
) -> Result<Stat, ErrorCode> {
    check_session(store, ctx.session_id)?;
    let path = req.path.as_deref().ok_or(ErrorCode::BadArguments)?;
    validate_path(path, false).map_err(|_| ErrorCode::BadArguments)?;
    let acl = acl::fixup(req.acl.as_deref(), ctx.auth)?;
    let mut node = store.node(path).ok_or(ErrorCode::NoNode)?;
    acl::check(&node.acl, perms::ADMIN, ctx.auth)?;
    node.aversion = check_version(node.aversion, req.version)?;
    node.acl = acl;
    let stat = node.stat();
    store.put_node(path, node);
    Ok(stat)
}

/// The opcode a create inside a multi has. ZooKeeper rebuilds each create op from its flags
/// (`Op.create`), keeping a create2 or createContainer header (whose results carry the Stat): a
/// container flag makes a createContainer whatever the header, and a createTTL header without
/// a TTL mode is a plain create (measured on 3.9.5 by the differential driver).
fn multi_create_opcode(header: OpCode, flags: i32) -> OpCode {
    match (header, CreateMode::from_flags(flags)) {
        (OpCode::CreateContainer, _) | (_, Ok(CreateMode::Container)) => OpCode::CreateContainer,
        (OpCode::CreateTtl, Ok(mode)) if mode.is_ttl() => OpCode::CreateTtl,
        (OpCode::Create2, _) => OpCode::Create2,
        _ => OpCode::Create,
    }
}

fn multi<S: TreeStore + ?Sized>(
    store: &mut S,
    ctx: &mut Ctx<'_>,
    ops: &[MultiOp],
) -> Vec<MultiResult> {
    let mut journal = Journal::new(store);
    let mut triggers = Vec::new();
    let mut results = Vec::with_capacity(ops.len());
    let mut failed_at = None;
    for (i, op) in ops.iter().enumerate() {
        let mut sub = Ctx {
            zxid: ctx.zxid,
            time_ms: ctx.time_ms,
            session_id: ctx.session_id,
            auth: ctx.auth,
            features: ctx.features,
            triggers: &mut triggers,
        };
        let result = match op {
            MultiOp::Create(header, req) => {
                let opcode = multi_create_opcode(*header, req.flags);
                create(&mut journal, &mut sub, opcode, req, -1).map(|(path, stat)| {
                    if opcode == OpCode::Create {
                        MultiResult::Create(path)
                    } else {
                        MultiResult::Create2(path, stat)
                    }
                })
            }
            MultiOp::CreateTtl(req) => {
                let (create_req, ttl) = split_ttl(req);
                match multi_create_opcode(OpCode::CreateTtl, req.flags) {
                    OpCode::CreateTtl => {
                        create(&mut journal, &mut sub, OpCode::CreateTtl, &create_req, ttl)
                            .map(|(path, stat)| MultiResult::Create2(path, stat))
                    }
                    OpCode::CreateContainer => create(
                        &mut journal,
                        &mut sub,
                        OpCode::CreateContainer,
                        &create_req,
                        -1,
                    )
                    .map(|(path, stat)| MultiResult::Create2(path, stat)),
                    _ => create(&mut journal, &mut sub, OpCode::Create, &create_req, -1)
                        .map(|(path, _)| MultiResult::Create(path)),
                }
            }
            MultiOp::Delete(req) => {
                delete(&mut journal, &mut sub, req).map(|()| MultiResult::Delete)
            }
            MultiOp::SetData(req) => {
                set_data(&mut journal, &mut sub, req).map(MultiResult::SetData)
            }
            MultiOp::Check(req) => check(&journal, &sub, req).map(|()| MultiResult::Check),
            MultiOp::GetChildren(_) | MultiOp::GetData(_) => Err(ErrorCode::BadArguments),
        };
        match result {
            Ok(r) => results.push(r),
            Err(code) => {
                failed_at = Some((i, code));
                break;
            }
        }
    }
    match failed_at {
        None => {
            ctx.triggers.extend(triggers);
            results
        }
        Some((i, code)) => {
            journal.rollback();
            // DataTree.processTxn: ops before the failure report 0, the failing op its code,
            // the ops after it RUNTIMEINCONSISTENCY.
            (0..ops.len())
                .map(|j| {
                    MultiResult::Error(match j.cmp(&i) {
                        std::cmp::Ordering::Less => 0,
                        std::cmp::Ordering::Equal => code.code(),
                        std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency.code(),
                    })
                })
                .collect()
        }
    }
}

/// deleteContainer sent by a client (ZooKeeper's own reaper uses it too): the node must exist,
/// be empty, and not be a session's ephemeral (`PrepRequestProcessor`); nothing else is
/// checked, as in ZooKeeper.
fn delete_container<S: TreeStore + ?Sized>(
    store: &mut S,
    ctx: &mut Ctx<'_>,
    path: &str,
) -> Result<(), ErrorCode> {
    let parent_path = parent_for_write(path)?;
    if is_special_path(path) {
        return Err(ErrorCode::BadArguments);
    }
    let node = store.node(path).ok_or(ErrorCode::NoNode)?;
    if node.num_children > 0 {
        return Err(ErrorCode::NotEmpty);
    }
    if node.owner_session().is_some() {
        return Err(ErrorCode::BadVersion);
    }
    remove_child(store, ctx, parent_path, path)
}

/// Removes an empty node and updates its parent, with the watch triggers of a delete.
fn remove_child<S: TreeStore + ?Sized>(
    store: &mut S,
    ctx: &mut Ctx<'_>,
    parent_path: &str,
    path: &str,
) -> Result<(), ErrorCode> {
    let mut parent = store.node(parent_path).ok_or(ErrorCode::NoNode)?;
    let node = store.node(path).ok_or(ErrorCode::NoNode)?;
    let bytes = node.data.as_ref().map_or(0, |d| d.len() as i64);
    let parent_acl = parent.acl.clone();
    store.remove_node(path);
    parent.num_children -= 1;
    parent.pzxid = parent.pzxid.max(ctx.zxid);
    store.put_node(parent_path, parent);
    quota::on_change(store, path, -1, -bytes);
    ctx.triggers.push(Trigger {
        path: path.to_string(),
        event: EventType::NodeDeleted,
        acl: node.acl,
    });
    ctx.triggers.push(Trigger {
        path: parent_path.to_string(),
        event: EventType::NodeChildrenChanged,
        acl: parent_acl,
    });
    Ok(())
}

/// reconfig as a log command: RECONFIGDISABLED unless enabled, else (a session check, then)
/// UNIMPLEMENTED, as a standalone ZooKeeper answers it. An ensemble's leader handles an
/// enabled reconfig itself and logs its result as [`Op::Configure`].
fn reconfig<S: TreeStore + ?Sized>(
    store: &S,
    ctx: &Ctx<'_>,
    enabled: bool,
) -> Result<Outcome, ErrorCode> {
    if !enabled {
        return Err(ErrorCode::ReconfigDisabled);
    }
    check_session(store, ctx.session_id)?;
    Err(ErrorCode::Unimplemented)
}

/// The path of ZooKeeper's configuration node.
pub const CONFIG_NODE: &str = "/zookeeper/config";

/// [`Op::Configure`]'s effect: `DataTree.processTxn` for a reconfig is a setData of
/// `/zookeeper/config` with version -1 (so the node keeps version -1).
fn configure<S: TreeStore + ?Sized>(
    store: &mut S,
    ctx: &mut Ctx<'_>,
    servers: &str,
) -> Result<Outcome, ErrorCode> {
    check_session(store, ctx.session_id)?;
    let mut node = store.node(CONFIG_NODE).ok_or(ErrorCode::NoNode)?;
    let data = Bytes::from(format!("{servers}version={:x}", ctx.zxid));
    node.data = Some(data.clone());
    node.mzxid = ctx.zxid;
    node.mtime = ctx.time_ms;
    let stat = node.stat();
    ctx.triggers.push(Trigger {
        path: CONFIG_NODE.to_string(),
        event: EventType::NodeDataChanged,
        acl: node.acl.clone(),
    });
    store.put_node(CONFIG_NODE, node);
    Ok(Outcome::Configured { data, stat })
}

/// A createTTL request as a create request and its TTL.
fn split_ttl(r: &zk_protocol::jute::proto::CreateTTLRequest) -> (CreateRequest, i64) {
    (
        CreateRequest {
            path: r.path.clone(),
            data: r.data.clone(),
            acl: r.acl.clone(),
            flags: r.flags,
        },
        r.ttl,
    )
}

/// Whether a container or TTL node is due for deletion at `now_ms` (`ContainerManager`'s
/// candidates): empty, and a container that had children, or a TTL node unmodified for longer
/// than its TTL.
pub fn reapable(node: &Node, now_ms: i64) -> bool {
    if node.num_children != 0 {
        return false;
    }
    if node.ephemeral_owner == CONTAINER_EPHEMERAL_OWNER {
        return node.cversion > 0;
    }
    match crate::node::ttl_of(node.ephemeral_owner) {
        Some(ttl) if ttl > 0 => now_ms.saturating_sub(node.mtime) > ttl,
        _ => false,
    }
}

fn reap<S: TreeStore + ?Sized>(
    store: &mut S,
    ctx: &mut Ctx<'_>,
    path: &str,
) -> Result<(), ErrorCode> {
    let parent_path = parent_for_write(path)?;
    let node = store.node(path).ok_or(ErrorCode::NoNode)?;
    if node.num_children > 0 {
        return Err(ErrorCode::NotEmpty);
    }
    if !reapable(&node, ctx.time_ms) {
        return Err(ErrorCode::BadVersion);
    }
    remove_child(store, ctx, parent_path, path)
}

fn close_session<S: TreeStore + ?Sized>(store: &mut S, ctx: &mut Ctx<'_>) -> Outcome {
    if store.session(ctx.session_id).is_none() {
        return Outcome::Error(ErrorCode::SessionExpired);
    }
    for path in store.ephemerals(ctx.session_id) {
        // Ephemerals have no children and their parents exist: removal cannot fail.
        if let Some((parent_path, _)) = split_parent(&path) {
            let _ = remove_child(store, ctx, parent_path, &path);
        }
    }
    store.remove_session(ctx.session_id);
    Outcome::SessionClosed
}

/// Applies one committed command at `zxid`. Deterministic: the same tree and command always
/// give the same tree and result. A failed command changes nothing.
pub fn apply<S: TreeStore + ?Sized>(store: &mut S, zxid: i64, cmd: &Command) -> Applied {
    let mut triggers = Vec::new();
    let mut ctx = Ctx {
        zxid,
        time_ms: cmd.time_ms,
        session_id: cmd.session_id,
        auth: &cmd.auth,
        features: cmd.features,
        triggers: &mut triggers,
    };
    let outcome = match &cmd.op {
        Op::CreateSession {
            timeout_ms,
            server_id,
        } => {
            let session_id = session_id_for(zxid, *server_id);
            store.put_session(
                session_id,
                Session {
                    timeout_ms: *timeout_ms,
                },
            );
            Outcome::SessionCreated { session_id }
        }
        Op::CloseSession => close_session(store, &mut ctx),
        Op::Reap { path } => reap(store, &mut ctx, path)
            .map(|()| Outcome::Deleted)
            .unwrap_or_else(Outcome::Error),
        Op::Configure(Ok(servers)) => {
            configure(store, &mut ctx, servers).unwrap_or_else(Outcome::Error)
        }
        Op::Configure(Err(code)) => Outcome::Error(*code),
        Op::Request(req) => {
            let result = match req {
                Request::Create(
                    op @ (OpCode::Create | OpCode::Create2 | OpCode::CreateContainer),
                    r,
                ) => create(store, &mut ctx, *op, r, -1)
                    .map(|(path, stat)| Outcome::Created { path, stat }),
                Request::CreateTtl(r) => {
                    let (create_req, ttl) = split_ttl(r);
                    create(store, &mut ctx, OpCode::CreateTtl, &create_req, ttl)
                        .map(|(path, stat)| Outcome::Created { path, stat })
                }
                Request::Delete(r) => delete(store, &mut ctx, r).map(|()| Outcome::Deleted),
                Request::DeleteContainer(path) => {
                    delete_container(store, &mut ctx, path).map(|()| Outcome::Deleted)
                }
                Request::SetData(r) => set_data(store, &mut ctx, r).map(Outcome::DataSet),
                Request::SetAcl(r) => set_acl(store, &mut ctx, r).map(Outcome::AclSet),
                Request::Multi(ops) => Ok(Outcome::Multi(multi(store, &mut ctx, ops))),
                Request::Reconfig(_) => reconfig(store, &ctx, cmd.features.reconfig_enabled),
                _ => Err(ErrorCode::Unimplemented),
            };
            result.unwrap_or_else(Outcome::Error)
        }
    };
    if matches!(outcome, Outcome::Error(_)) {
        triggers.clear();
    }
    Applied { outcome, triggers }
}

/// Creates the nodes every tree starts with — `/`, `/zookeeper`, `/zookeeper/quota`,
/// `/zookeeper/config` — with zxid 0 and ZooKeeper's Stat quirks: children are added without
/// counting as creates, so `/zookeeper` reports cversion −2 and `/` −1.
pub fn init_system_nodes<S: TreeStore + ?Sized>(store: &mut S) {
    let open = vec![ACL {
        perms: perms::ALL,
        id: zk_protocol::jute::data::Id {
            scheme: Some("world".into()),
            id: Some("anyone".into()),
        },
    }];
    let read_only = vec![ACL {
        perms: perms::READ,
        ..open[0].clone()
    }];
    let node = |num_children, data: Option<Bytes>, acl: &Vec<ACL>| Node {
        num_children,
        data,
        acl: Arc::from(acl.as_slice()),
        ..Node::default()
    };
    store.put_node("/", node(1, Some(Bytes::new()), &open));
    store.put_node("/zookeeper", node(2, Some(Bytes::new()), &open));
    store.put_node("/zookeeper/quota", node(0, Some(Bytes::new()), &open));
    // Apache ZooKeeper 3.9.5 reports version -1 and aversion -1 for /zookeeper/config.
    store.put_node(
        CONFIG_NODE,
        Node {
            version: -1,
            aversion: -1,
            ..node(0, Some(Bytes::new()), &read_only)
        },
    );
}
