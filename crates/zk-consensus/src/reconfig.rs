//! ZooKeeper's `reconfig` on the leader: the checks of `PrepRequestProcessor` in its order,
//! the membership change through openraft (participants are voters, observers learners), then
//! `/zookeeper/config` rewritten by an [`Op::Configure`] command in the log — which also
//! answers the client, with that command's zxid, whether the reconfig succeeded or failed (a
//! failed reconfig takes a zxid in ZooKeeper too).
//!
//! A new server joins as ZooKeeper's do: started with a zoo.cfg that lists the ensemble and
//! itself, it finds the ensemble running, does not initialize a cluster of its own and asks the
//! leader to add it as a learner ([`Consensus::join_as_learner`]); it replicates from then on,
//! and a reconfig that adds it as a participant finds it synced and makes it a voter.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use tokio::sync::watch;
use zk_datatree::{CONFIG_NODE, Command, Node, Op};
use zk_protocol::jute::proto::ReconfigRequest;
use zk_protocol::quorum::QuorumConfig;
use zk_protocol::{ErrorCode, Request};

use crate::wire::{JoinReply, PeerClient, PeerReply, PeerRequest};
use crate::{Consensus, ConsensusError, FORWARD_TIMEOUT, Proposal, running};

/// How long a new server waits for a peer's answer when it looks for a running ensemble.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the leader is in carrying out a reconfig (one at a time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ReconfigPhase {
    #[default]
    Idle,
    /// Checking the request and changing openraft's membership.
    Changing,
    /// Waiting for the answer (the [`Op::Configure`] command) to be applied here.
    Answering,
}

/// A reconfig's turn ([`take_turn`]); the next one may start once it is dropped.
struct Turn<'a>(&'a watch::Sender<ReconfigPhase>);

impl Turn<'_> {
    fn answering(&self) {
        self.0.send_replace(ReconfigPhase::Answering);
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.send_replace(ReconfigPhase::Idle);
    }
}

/// The leader's turn to carry out a reconfig, or `None` when another one is changing the
/// membership (RECONFIGINPROGRESS). One that has only its answer left to apply is waited for
/// (bounded): every server replies to its client when it applies that answer, maybe before
/// the leader has, so a reconfig arriving then may come from a client that has its reply — it
/// follows that reconfig (ZooKeeper's is over once committed), it does not overlap it.
async fn take_turn(phase: &watch::Sender<ReconfigPhase>) -> Option<Turn<'_>> {
    let deadline = tokio::time::Instant::now() + FORWARD_TIMEOUT;
    loop {
        let mut seen = ReconfigPhase::Idle;
        let taken = phase.send_if_modified(|p| {
            seen = *p;
            let free = *p == ReconfigPhase::Idle;
            if free {
                *p = ReconfigPhase::Changing;
            }
            free
        });
        if taken {
            return Some(Turn(phase));
        }
        if seen != ReconfigPhase::Answering {
            return None;
        }
        let mut rx = phase.subscribe();
        let over = rx.wait_for(|p| *p != ReconfigPhase::Answering);
        tokio::time::timeout_at(deadline, over).await.ok()?.ok()?;
    }
}

/// Whether a command is a reconfig this node must carry out as an ensemble's leader.
pub(crate) fn is_reconfig(cmd: &Command) -> bool {
    matches!(cmd.op, Op::Request(Request::Reconfig(_))) && cmd.features.reconfig_enabled
}

impl Consensus {
    /// Carries out a client's reconfig on the leader (see the module docs). Resolves like a
    /// proposal, to the zxid of the [`Op::Configure`] command that answers it. One at a time
    /// ([`take_turn`]).
    pub(crate) async fn reconfigure(
        &self,
        cmd: Command,
        origin: Option<u64>,
    ) -> Result<Proposal, ConsensusError> {
        let Op::Request(Request::Reconfig(req)) = &cmd.op else {
            return Err(ConsensusError::Fatal("not a reconfig".into()));
        };
        let req = req.clone();
        let this = self.clone();
        // Runs on its own (the connection waits for it before its next request), so that a
        // follower's forwarding connection is not held up by a membership change.
        let task = tokio::spawn(async move {
            let turn = take_turn(&this.inner.reconfig_phase).await;
            let result = match &turn {
                None => Err(ErrorCode::ReconfigInProgress),
                Some(_) => match this.prepare(&cmd, &req) {
                    Ok((current, next)) => this
                        .change_membership(&current, &next)
                        .await?
                        .map(|()| next.render()),
                    Err(code) => Err(code),
                },
            };
            if let Err(code) = &result {
                tracing::info!(code = %code, "reconfig refused");
            }
            let answer = Command {
                op: Op::Configure(result),
                ..cmd
            };
            if let Some(turn) = &turn {
                turn.answering();
            }
            let zxid = this.submit_plain(answer, origin).await?.await;
            drop(turn);
            zxid
        });
        Ok(Box::pin(async move {
            task.await
                .map_err(|e| ConsensusError::Fatal(format!("reconfig task: {e}")))?
        }))
    }

    /// The configuration `/zookeeper/config` shows in `node`, and its version (the zxid that
    /// wrote it; the initial configuration's is 1).
    fn current_config(&self, node: &Node) -> Result<(QuorumConfig, i64), ErrorCode> {
        let (text, version) = match node.data.as_ref().filter(|d| !d.is_empty()) {
            Some(data) => (String::from_utf8_lossy(data).into_owned(), node.mzxid),
            None => (self.inner.dynamic_config.clone().unwrap_or_default(), 1),
        };
        let config = QuorumConfig::parse(&text).map_err(|_| ErrorCode::SystemError)?;
        Ok((config, version))
    }

    /// `PrepRequestProcessor`'s checks of a reconfig, in its order: the current configuration
    /// and the one the request asks for.
    fn prepare(
        &self,
        cmd: &Command,
        req: &ReconfigRequest,
    ) -> Result<(QuorumConfig, QuorumConfig), ErrorCode> {
        let state = &self.inner.state;
        if state
            .session(cmd.session_id)
            .map_err(|_| ErrorCode::SystemError)?
            .is_none()
        {
            return Err(ErrorCode::SessionExpired);
        }
        let metrics = self.inner.raft.metrics();
        if metrics
            .borrow_watched()
            .membership_config
            .membership()
            .get_joint_config()
            .len()
            > 1
        {
            return Err(ErrorCode::ReconfigInProgress);
        }
        let node = state
            .node(CONFIG_NODE)
            .map_err(|_| ErrorCode::SystemError)?
            .ok_or(ErrorCode::NoNode)?;
        let (current, version) = self.current_config(&node)?;
        if req.cur_config_id != -1 && req.cur_config_id != version {
            return Err(ErrorCode::BadVersion);
        }
        let next = match &req.new_members {
            Some(members) => QuorumConfig::whole(members, self.inner.standalone_enabled),
            None => current.incremental(
                req.joining_servers.as_deref(),
                req.leaving_servers.as_deref(),
            ),
        }
        .map_err(|e| {
            tracing::info!(error = %e, "reconfig: bad configuration");
            e.code()
        })?;
        next.check_voters(self.inner.standalone_enabled)
            .map_err(|e| e.code())?;
        let synced = self.synced_peers();
        let voters: Vec<u64> = next.voters().collect();
        let ready = voters
            .iter()
            .filter(|id| **id == self.inner.node_id || synced.contains(id))
            .count();
        if ready * 2 <= voters.len() {
            return Err(ErrorCode::NewConfigNoQuorum);
        }
        zk_datatree::check_acl(&node.acl, zk_protocol::perms::WRITE, &cmd.auth)?;
        Ok((current, next))
    }

    /// Makes openraft's membership follow `next`: participants voters, observers learners,
    /// each at its quorum address; servers of the current configuration that `next` leaves
    /// out are removed (learners that joined but are not configured yet stay). Only the
    /// leader's own failures are errors; a refusal is the code to answer.
    async fn change_membership(
        &self,
        current: &QuorumConfig,
        next: &QuorumConfig,
    ) -> Result<Result<(), ErrorCode>, ConsensusError> {
        let (voters, nodes) = {
            let metrics = self.inner.raft.metrics();
            let m = metrics.borrow_watched();
            let membership = m.membership_config.membership();
            let voters: BTreeSet<u64> = membership.voter_ids().collect();
            let nodes: BTreeMap<u64, BasicNode> =
                membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
            (voters, nodes)
        };
        let wanted: BTreeMap<u64, BasicNode> = next
            .servers
            .iter()
            .map(|(id, s)| (*id, BasicNode::new(s.quorum.render())))
            .collect();
        let next_voters: BTreeSet<u64> = next.voters().collect();
        let mut changes = Vec::new();
        let added: BTreeMap<u64, BasicNode> = wanted
            .iter()
            .filter(|(id, _)| !nodes.contains_key(id))
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        if !added.is_empty() {
            changes.push(ChangeMembers::AddNodes(added));
        }
        let moved: BTreeMap<u64, BasicNode> = wanted
            .iter()
            .filter(|(id, n)| nodes.get(id).is_some_and(|old| old.addr != n.addr))
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        if !moved.is_empty() {
            changes.push(ChangeMembers::SetNodes(moved));
        }
        if next_voters != voters {
            changes.push(ChangeMembers::ReplaceAllVoters(next_voters.clone()));
        }
        let removed: BTreeSet<u64> = current
            .servers
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !wanted.contains_key(id) && !voters.contains(id) && nodes.contains_key(id))
            .collect();
        if !removed.is_empty() {
            changes.push(ChangeMembers::RemoveNodes(removed));
        }
        if changes.is_empty() {
            return Ok(Ok(()));
        }
        tracing::info!(?changes, "reconfig: changing the membership");
        let change = self
            .inner
            .raft
            .change_membership(ChangeMembers::Batch(changes), false);
        match tokio::time::timeout(FORWARD_TIMEOUT, change).await {
            Err(_) => Err(ConsensusError::Timeout(
                "the membership change did not commit".into(),
            )),
            Ok(Ok(_)) => Ok(Ok(())),
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                tracing::info!(error = %e, "reconfig: membership change refused");
                Ok(Err(match e {
                    ChangeMembershipError::InProgress(_) => ErrorCode::ReconfigInProgress,
                    _ => ErrorCode::BadArguments,
                }))
            }
            Ok(Err(e)) => Err(e.into()),
        }
    }

    /// The peers that acknowledged this leader within the election timeout and replicate
    /// from the log close behind it (ZooKeeper's synced learners). Empty off the leader.
    pub(crate) fn synced_peers(&self) -> BTreeSet<u64> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        self.learner_progress(&m)
            .map(|(_, synced)| synced)
            .unwrap_or_default()
    }

    /// From a leader's metrics: the peers that acknowledged it within the election timeout
    /// (ZooKeeper's connected learners), and those of them replicating from the log close
    /// behind it — within the log tail kept behind a snapshot, so not waiting for a snapshot
    /// (ZooKeeper's synced learners). `None` without replication metrics (not a leader).
    pub(crate) fn learner_progress(
        &self,
        m: &openraft::RaftMetrics<crate::types::TypeConfig>,
    ) -> Option<(Vec<u64>, BTreeSet<u64>)> {
        let limit = self.inner.quorum_timeout.unwrap_or(Duration::ZERO);
        let (acks, matched) = (m.heartbeat.as_ref()?, m.replication.as_ref()?);
        let last = m.last_log_index.unwrap_or(0);
        let recent: Vec<u64> = acks
            .iter()
            .filter(|(id, at)| {
                **id != self.inner.node_id
                    && at
                        .as_ref()
                        .is_some_and(|at| openraft::Instant::elapsed(&**at) < limit)
            })
            .map(|(id, _)| *id)
            .collect();
        let synced = recent
            .iter()
            .filter(|id| {
                matched
                    .get(id)
                    .and_then(|l| l.as_ref())
                    .is_some_and(|l| l.index + self.inner.keep_behind_snapshot >= last)
            })
            .copied()
            .collect();
        Some((recent, synced))
    }

    /// Asks the peers of `peers` (this node left out) whether an ensemble already runs: any
    /// answer from an initialized peer says so. Every peer is asked at once, each bounded.
    pub(crate) async fn ensemble_running(&self, peers: &BTreeMap<u64, String>) -> bool {
        let me = self.inner.node_id;
        let Some(addr) = peers.get(&me).cloned() else {
            return false;
        };
        let local_ip = self.inner.local_ip;
        let asks = peers
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(_, peer)| async {
                matches!(
                    ask_to_join(peer, local_ip, me, &addr).await,
                    Some(JoinReply::Member | JoinReply::NotLeader(_))
                )
            });
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .any(|running| running)
    }

    /// The leader's side of [`PeerRequest::Join`].
    pub(crate) async fn accept_join(&self, id: u64, addr: String) -> JoinReply {
        let raft = &self.inner.raft;
        if !raft.is_initialized().await.unwrap_or(false) {
            return JoinReply::NotInitialized;
        }
        if !raft.is_leader() {
            return JoinReply::NotLeader(self.leader());
        }
        let known = raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .get_node(&id)
            .is_some();
        if known {
            return JoinReply::Member;
        }
        match raft.add_learner(id, BasicNode::new(&addr), false).await {
            Ok(_) => {
                tracing::info!(server = id, %addr, "a new server joined as a learner");
                JoinReply::Member
            }
            Err(e) => {
                tracing::debug!(server = id, error = %e, "adding a joining server failed");
                JoinReply::NotLeader(None)
            }
        }
    }
}

/// Sends [`PeerRequest::Join`] for server `me` at `addr` to `peer`; its answer, or `None`
/// when there is none within [`PROBE_TIMEOUT`].
async fn ask_to_join(
    peer: &str,
    local_ip: Option<std::net::IpAddr>,
    me: u64,
    addr: &str,
) -> Option<JoinReply> {
    let client = PeerClient::new(peer.to_string(), local_ip);
    let req = PeerRequest::Join {
        id: me,
        addr: addr.to_string(),
    };
    match tokio::time::timeout(PROBE_TIMEOUT, client.call(&req)).await {
        Ok(Ok(PeerReply::Join(reply))) => Some(reply),
        _ => None,
    }
}

/// A new server's side of joining: until the membership it replicates names it, asks its
/// peers (the leader, once one answers with it) to add it as a learner, every `period`.
pub(crate) async fn join_as_learner(
    node: std::sync::Weak<crate::Inner>,
    peers: BTreeMap<u64, String>,
    period: Duration,
) {
    let mut target: Option<u64> = None;
    loop {
        let Some(inner) = running(&node) else {
            return;
        };
        let me = inner.node_id;
        let member = inner
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .get_node(&me)
            .is_some();
        if member {
            return;
        }
        let (Some(addr), local_ip) = (peers.get(&me).cloned(), inner.local_ip) else {
            return;
        };
        drop(inner);
        let ids: Vec<u64> = match target {
            Some(id) => vec![id],
            None => peers.keys().filter(|id| **id != me).copied().collect(),
        };
        target = None;
        for id in ids {
            let Some(peer) = peers.get(&id) else {
                continue;
            };
            match ask_to_join(peer, local_ip, me, &addr).await {
                Some(JoinReply::Member) => break,
                Some(JoinReply::NotLeader(Some(leader))) => {
                    target = Some(leader);
                    break;
                }
                _ => {}
            }
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_reconfig_waits_only_for_one_that_is_answering() {
        let phase = watch::Sender::new(ReconfigPhase::Idle);
        let first = take_turn(&phase).await.expect("free");
        assert!(
            take_turn(&phase).await.is_none(),
            "refused while the membership changes"
        );
        first.answering();
        let (second, ()) = tokio::join!(take_turn(&phase), async { drop(first) });
        let second = second.expect("waited for the answer");
        assert_eq!(*phase.borrow(), ReconfigPhase::Changing);
        second.answering();
        // An answer that never comes: refused once FORWARD_TIMEOUT is over.
        assert!(take_turn(&phase).await.is_none());
        drop(second);
        assert_eq!(*phase.borrow(), ReconfigPhase::Idle);
    }
}
