#!/usr/bin/env python3
"""differential: one seeded random operation stream, two servers in lockstep.

    differential.py [--seeds 20] [--ops 5000]          start both servers, run seeds 1..20
    differential.py --seed 7 --ops 2000                one seed
    differential.py --apache-port P --ferrokeeper-port Q ...   use servers already running
    differential.py --replay FILE [--minimize]          replay a recorded op list (and shrink it)

Every seed drives Apache ZooKeeper 3.9.5 (the reference) and ferrokeeper with
the same stream of raw wire requests, step by step: one request on one of
three sessions (A, B, C) per server, its reply, then a barrier on every
session (a ping each; the ping's reply comes after any notification queued
before it) so that the watch events each session got are part of the step.
Each server's step is rendered as normalized text lines and the two are
compared; the first difference ends the seed ("divergence"): the seed, the
step, the operation, both servers' lines, a diff and the last steps are
printed, and the op list up to that step is written to
results/differential/seed-<N>.ops.json (replayable with --replay).

Normalization (built on rawframes_suite's codec and naming):

* zxids: the header zxid of a successful write at step k is named "@k";
  a Stat czxid/mzxid/pzxid or notification zxid equal to one is printed as
  that name; any other zxid (container deletions by the server) is "#n" in
  order of first appearance on that server. Header zxids of reads, pings and
  failed writes are only checked for never going backwards ("~", else
  "BACK" or "<@k").
* session ids (and ephemeralOwner) S1, S2, ... by first appearance;
  ctime/mtime are "T" (or 0).
* children, multiRead children, getEphemerals and whoAmI lists are sorted;
  the notifications a session receives between two replies are sorted.
* paths are printed relative to the seed's root ("R/a/x").

Container nodes: the servers delete an empty container that had children
on their own, about once a second. After each write the driver probes the
containers it knows of (on a fourth, watch-less "admin" session); if one is
due on either server it waits until both servers deleted it, then records
the deletion and the events it caused as part of that step.

Standard library only. See compat-tests/README.md, "Suite: differential".
"""

import argparse
import difflib
import hashlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMPAT_DIR = HERE.parent
RESULTS = COMPAT_DIR / "results" / "differential"
sys.path.insert(0, str(COMPAT_DIR / "rawframes"))
import rawframes_suite as rf  # noqa: E402

SIDES = ("apache", "ferrokeeper")
SLOTS = "ABC"
SESSION_TIMEOUT = 30000  # ms; every session is pinged at every step
REPLY_TIMEOUT = 5.0
CLOSE_WAIT = 2.0  # s to wait for the server to close a connection where it should
GC_WAIT = 6.0  # s to wait for a due container to be deleted by both servers
HISTORY = 10
DEFAULT_SEEDS = 10
DEFAULT_OPS = 2000
OP = rf.OP
SUPER = ("super", "test")  # compat-tests' superDigest is super:test

# --------------------------------------------------------------- universe ---

NODES = ["a", "b", "c", "a/x", "a/y", "b/x", "c/x", "a/x/z", "b/x/z"]
NODE_W = [6, 6, 4, 4, 3, 3, 2, 2, 1]
ABSENT = ["q", "a/q", "c/x/y/z", "a/x/z/w"]
BADPATHS = ["a/", "a//x", "a/./x", "a/../b", "b/x/"]  # invalid (but "a/" + a sequential suffix is valid)
SYSTEM = ["/zookeeper", "/zookeeper/quota"]  # read-only ops only
SEQ_PARENTS = ["", "a", "b", "a/x"]
EPH_PREFIXES = ["", "a", "a/x", "b", "s", "a/s", "c/", "/"]
USERS = [("u1", "p1"), ("u2", "p2"), ("u1", "wrong"), SUPER]  # super:test: the superDigest user

ACLS = {
    "open": [(31, "world", "anyone")],
    "read": [(1, "world", "anyone")],
    "world-rcd": [(1 | 4 | 8, "world", "anyone")],
    "world-nodel": [(31 & ~8, "world", "anyone")],
    "world-0": [(0, "world", "anyone")],
    "creator": [(31, "auth", "")],
    "digest1": [(31, "digest", rf.digest_id("u1", "p1"))],
    "digest1+world-r": [(31, "digest", rf.digest_id("u1", "p1")), (1, "world", "anyone")],
    "digest2-admin": [(16, "digest", rf.digest_id("u2", "p2")), (15, "world", "anyone")],
    "ip-local": [(31, "ip", "127.0.0.1")],
    "ip-net": [(31, "ip", "127.0.0.0/8")],
    "ip-other": [(31, "ip", "10.0.0.0/8"), (1, "world", "anyone")],
    "empty": [],
    "bad-scheme": [(31, "nosuch", "x")],
    "digest-bad": [(31, "digest", "nocolon")],
    "ip-bad": [(31, "ip", "300.1.2.3")],
}
ACL_W = {"open": 120, "read": 3, "world-rcd": 3, "world-nodel": 3, "world-0": 1, "creator": 4,
         "digest1": 3, "digest1+world-r": 3, "digest2-admin": 2, "ip-local": 3, "ip-net": 2,
         "ip-other": 2, "empty": 1, "bad-scheme": 1, "digest-bad": 1, "ip-bad": 1}

OP_W = {
    "create": 20, "delete": 10, "exists": 8, "getData": 8, "getChildren": 5, "getChildren2": 5,
    "setData": 9, "getACL": 3, "setACL": 3, "sync": 2, "multi": 8, "multiRead": 4,
    "getEphemerals": 2, "getAllChildrenNumber": 2, "addWatch": 4, "checkWatches": 2,
    "removeWatches": 3, "auth": 1, "whoAmI": 1, "close": 1, "resume": 1,
}
# Switches for steering the stream away from a known divergence (--weight knob:NAME=0).
KNOBS = {
    # inside a multi: TTL flags on create/create2, the container flag on create2,
    # non-TTL flags on createTTL
    "multi-create-flags": 1,
    "resume-bare": 1,  # resuming a session without setWatches
    "watches": 1,  # watch flags on reads, addWatch
}
WEIGHT_ARGS = []  # the --weight arguments in effect (recorded with the results)
# --avoid-known: steer around the divergences found so far (README, "Suite: differential")
AVOID_KNOWN = []  # every divergence found so far is fixed or normalized (README)
WATCH_TYPES = {1: "children", 2: "data", 3: "any", 4: "persistent", 5: "recursive"}


def wchoice(rng, weights):
    keys = list(weights)
    return rng.choices(keys, [weights[k] for k in keys])[0]


class Gen:
    """The random op stream. Its state only comes from the seed and from the
    reference server's replies (identical to the other server's up to the first
    divergence), so a seed replays the same stream."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.known = {}  # rel path -> (version, cversion, aversion)
        self.seqs = []  # recent sequential nodes (rel paths)

    def path(self, read=False):
        r = self.rng.random()
        if r < 0.015:
            return self.rng.choice(BADPATHS)
        if read and r < 0.03:
            return self.rng.choice(SYSTEM)
        if r < 0.05:
            return ""
        if r < 0.20 and self.seqs:
            return self.rng.choice(self.seqs)
        if r < 0.24:
            return self.rng.choice(ABSENT)
        return self.rng.choices(NODES, NODE_W)[0]

    def leafish(self):
        """A path for deletes: mostly deeper nodes and sequential ones."""
        r = self.rng.random()
        if r < 0.3 and self.seqs:
            return self.rng.choice(self.seqs)
        if r < 0.6:
            return self.rng.choice([p for p in NODES if "/" in p])
        return self.path()

    def data(self):
        r = self.rng.random()
        if r < 0.08:
            return None
        if r < 0.20:
            return ""
        if r < 0.93:
            return self.rng.randbytes(self.rng.randint(1, 16)).hex()
        return self.rng.randbytes(self.rng.randint(100, 1500)).hex()

    def version(self, path, field=0):
        r = self.rng.random()
        if r < 0.5:
            return self.known.get(path, (0, 0, 0))[field]
        if r < 0.75:
            return -1
        return self.rng.randint(0, 4)

    def create_spec(self, in_multi=False):
        rng = self.rng
        opc = rng.choices([1, 15, 19, 21], [45, 35, 10, 8 if not in_multi else 6])[0]
        if opc == 21:
            flags = rng.choices([5, 6, 0, 1], [60, 30, 5, 5])[0]
        elif opc == 19:
            flags = rng.choices([4, 0, 2], [85, 10, 5])[0]
        else:
            flags = rng.choices([0, 1, 2, 3, 4, 5], [45, 22, 16, 12, 3, 2])[0]
        if in_multi and not KNOBS["multi-create-flags"]:
            if opc in (1, 15) and flags == 5 or opc == 15 and flags == 4:
                flags = 0
            elif opc == 21 and flags not in (5, 6):
                flags = 5
        if flags in (2, 3, 6) and rng.random() < 0.7:
            path = rng.choice(SEQ_PARENTS)
            path = (path + "/s-") if path else "s-"
        else:
            path = self.path()
            if flags in (2, 3, 6) and path == "":
                path = "s-"  # a sequential child of "/" would depend on the root's cversion
        spec = {"path": path, "data": self.data(), "flags": flags, "op": opc,
                "acl": wchoice(rng, ACL_W)}
        if opc == 21:
            spec["ttl"] = rng.choices([3600000, 86400000, 0, -5, 1 << 41], [60, 30, 4, 3, 3])[0]
            if spec["ttl"] < 0 and flags not in (5, 6) and not in_multi:
                # Apache ZooKeeper 3.9.5 accepts this createTTL and then dies applying
                # it (EphemeralType.toEphemeralOwner throws in the commit processor)
                spec["ttl"] = 0
        return spec

    def next(self, slot_closed=False):
        rng = self.rng
        k = wchoice(rng, OP_W)
        while k == "addWatch" and not KNOBS["watches"]:
            k = wchoice(rng, OP_W)
        op = {"k": k, "s": rng.randrange(3)}
        if k == "create":
            op.update(self.create_spec())
        elif k == "delete":
            p = self.leafish()
            op.update(path=p, v=self.version(p))
        elif k in ("exists", "getData", "getChildren", "getChildren2"):
            op.update(path=self.path(read=True), w=rng.random() < 0.45 and KNOBS["watches"] > 0)
        elif k == "setData":
            p = self.path()
            op.update(path=p, data=self.data(), v=self.version(p))
        elif k == "getACL":
            op.update(path=self.path(read=True))
        elif k == "setACL":
            p = self.path()
            op.update(path=p, acl=wchoice(rng, ACL_W), v=self.version(p, 2))
        elif k in ("sync", "getAllChildrenNumber"):
            op.update(path=self.path(read=True))
        elif k == "getEphemerals":
            op.update(path=rng.choice(EPH_PREFIXES))
        elif k == "multi":
            n = rng.choices([0, 1, 2, 3, 4, 5], [3, 20, 25, 22, 15, 15])[0]
            subs = []
            for _ in range(n):
                t = rng.choices(["create", "delete", "setData", "check"], [35, 20, 25, 20])[0]
                if t == "create":
                    s = {"t": t}
                    s.update(self.create_spec(in_multi=True))
                else:
                    p = self.leafish() if t == "delete" else self.path()
                    s = {"t": t, "path": p, "v": self.version(p)}
                    if t == "setData":
                        s["data"] = self.data()
                subs.append(s)
            op["ops"] = subs
        elif k == "multiRead":
            op["ops"] = [{"t": rng.choice(["getData", "getChildren"]), "path": self.path(read=True),
                          "w": rng.random() < 0.15 and KNOBS["watches"] > 0} for _ in range(rng.randint(1, 5))]
        elif k == "addWatch":
            op.update(path=self.path(), mode=rng.choice([0, 1]))
        elif k in ("checkWatches", "removeWatches"):
            op.update(path=self.path(), type=rng.choices([1, 2, 3, 4, 5], [3, 3, 3, 1, 1])[0])
        elif k == "auth":
            op.update(user=list(rng.choice(USERS)))
        elif k == "resume":
            op.update(setwatches=rng.random() < 0.8 or not KNOBS["resume-bare"], v2=rng.random() < 0.5)
        return op

    def learn(self, op, items_by_path):
        """Remember versions and sequential names from the reference's decoded replies."""
        for path, stat in items_by_path.get("stats", []):
            self.known[path] = (stat[5], stat[6], stat[7])
        for path in items_by_path.get("deleted", []):
            self.known.pop(path, None)
        for path in items_by_path.get("created_seq", []):
            if path not in self.seqs:
                self.seqs.append(path)
                del self.seqs[:-12]


# ------------------------------------------------------------- rendering ---


def absp(root, rel):
    if rel.startswith("/"):  # outside the seed's root: "/", "/zookeeper", ...
        return rel
    return root + ("/" + rel if rel else "")


def relp(root, p):
    if p is None:
        return "null"
    if p == root:
        return "R"
    if p.startswith(root + "/"):
        return "R" + p[len(root):]
    return p


def show_data(d):
    if d is None:
        return "null"
    b = bytes.fromhex(d) if isinstance(d, str) else bytes(d)
    if len(b) <= 16:
        return repr(b)[1:]
    return "<%dB %s>" % (len(b), hashlib.sha1(b).hexdigest()[:10])


def describe(op):
    """The op as text (the same for both servers)."""
    k = op["k"]
    slot = SLOTS[op["s"]]
    p = lambda q: q if q.startswith("/") else "R" + ("/" + q if q else "")  # noqa: E731

    def create_desc(o):
        name = {1: "create", 15: "create2", 19: "createContainer", 21: "createTTL"}[o["op"]]
        return "%s(%s flags=%d data=%s acl=%s%s)" % (name, p(o["path"]), o["flags"], show_data(o["data"]),
                                                     o["acl"], " ttl=%d" % o["ttl"] if "ttl" in o else "")
    if k == "create":
        return "%s %s" % (slot, create_desc(op))
    if k in ("delete",):
        return "%s delete(%s v=%d)" % (slot, p(op["path"]), op["v"])
    if k in ("exists", "getData", "getChildren", "getChildren2"):
        return "%s %s(%s%s)" % (slot, k, p(op["path"]), " watch" if op["w"] else "")
    if k == "setData":
        return "%s setData(%s %s v=%d)" % (slot, p(op["path"]), show_data(op["data"]), op["v"])
    if k == "setACL":
        return "%s setACL(%s %s v=%d)" % (slot, p(op["path"]), op["acl"], op["v"])
    if k in ("getACL", "sync", "getAllChildrenNumber", "getEphemerals"):
        return "%s %s(%s)" % (slot, k, p(op["path"]))
    if k == "multi":
        parts = []
        for s in op["ops"]:
            if s["t"] == "create":
                parts.append(create_desc(s))
            elif s["t"] == "setData":
                parts.append("setData %s %s v=%d" % (p(s["path"]), show_data(s["data"]), s["v"]))
            else:
                parts.append("%s %s v=%d" % (s["t"], p(s["path"]), s["v"]))
        return "%s multi(%s)" % (slot, "; ".join(parts))
    if k == "multiRead":
        return "%s multiRead(%s)" % (slot, "; ".join("%s %s%s" % (s["t"], p(s["path"]), " watch" if s["w"] else "")
                                                     for s in op["ops"]))
    if k == "addWatch":
        return "%s addWatch(%s %s)" % (slot, p(op["path"]), ["persistent", "recursive"][op["mode"]])
    if k in ("checkWatches", "removeWatches"):
        return "%s %s(%s %s)" % (slot, k, p(op["path"]), WATCH_TYPES[op["type"]])
    if k == "auth":
        return "%s addauth(digest %s:%s)" % (slot, op["user"][0], op["user"][1])
    if k == "whoAmI":
        return "%s whoAmI()" % slot
    if k == "close":
        return "%s closeSession() + new session" % slot
    if k == "resume":
        return "%s resume session on a new connection%s" % (
            slot, (" + setWatches%s" % ("2" if op.get("v2") else "")) if op.get("setwatches") else "")
    return "%s %s" % (slot, k)


class ZNames(rf.Names):
    """rawframes' naming, except that a zxid which is no write of this stream
    is named "#n" by first appearance (instead of relative to the anchors)."""

    def __init__(self):
        super().__init__()
        self.other = {}

    def ref(self, z):
        if z in self.anchors:
            return self.anchors[z]
        if z in (0, -1):
            return str(z)
        if z not in self.other:
            self.other[z] = "#%d" % (len(self.other) + 1)
        return self.other[z]


def build_create(root, o):
    data = None if o["data"] is None else bytes.fromhex(o["data"])
    return rf.create_body(absp(root, o["path"]), data, ACLS[o["acl"]], o["flags"],
                          o.get("ttl") if o["op"] == 21 else None)


def build_request(root, op):
    """(opcode, body) of a plain request op."""
    k = op["k"]
    path = absp(root, op.get("path", ""))
    if k == "create":
        return op["op"], build_create(root, op)
    if k == "delete":
        return OP["delete"], rf.ustr(path) + rf.i32(op["v"])
    if k in ("exists", "getData", "getChildren", "getChildren2"):
        return OP[k], rf.ustr(path) + rf.bln(op["w"])
    if k == "setData":
        data = None if op["data"] is None else bytes.fromhex(op["data"])
        return OP["setData"], rf.ustr(path) + rf.buf(data) + rf.i32(op["v"])
    if k == "getACL":
        return OP["getACL"], rf.ustr(path)
    if k == "setACL":
        return OP["setACL"], rf.ustr(path) + rf.acl_vec(ACLS[op["acl"]]) + rf.i32(op["v"])
    if k in ("sync", "getEphemerals", "getAllChildrenNumber"):
        return OP[k], rf.ustr(path)
    if k == "multi":
        body = b""
        for s in op["ops"]:
            sp = absp(root, s.get("path", ""))
            if s["t"] == "create":
                typ, rec = s["op"], build_create(root, s)
            elif s["t"] == "delete":
                typ, rec = 2, rf.ustr(sp) + rf.i32(s["v"])
            elif s["t"] == "setData":
                data = None if s["data"] is None else bytes.fromhex(s["data"])
                typ, rec = 5, rf.ustr(sp) + rf.buf(data) + rf.i32(s["v"])
            else:
                typ, rec = 13, rf.ustr(sp) + rf.i32(s["v"])
            body += rf.i32(typ) + rf.bln(False) + rf.i32(-1) + rec
        return OP["multi"], body + rf.i32(-1) + rf.bln(True) + rf.i32(-1)
    if k == "multiRead":
        body = b""
        for s in op["ops"]:
            body += rf.i32(OP[s["t"]]) + rf.bln(False) + rf.i32(-1) + rf.ustr(absp(root, s["path"])) + rf.bln(s["w"])
        return OP["multiRead"], body + rf.i32(-1) + rf.bln(True) + rf.i32(-1)
    if k == "addWatch":
        return OP["addWatch"], rf.ustr(path) + rf.i32(op["mode"])
    if k in ("checkWatches", "removeWatches"):
        return OP[k], rf.ustr(path) + rf.i32(op["type"])
    if k == "auth":
        return OP["auth"], rf.i32(0) + rf.ustr("digest") + rf.buf("%s:%s" % tuple(op["user"]))
    if k == "whoAmI":
        return OP["whoAmI"], b""
    raise ValueError(k)


# ----------------------------------------------------------------- sides ---


class Side:
    """One server: three session slots, an admin session, the naming state."""

    def __init__(self, kind, port, root):
        self.kind, self.port, self.root = kind, port, root
        self.ctx = types.SimpleNamespace(port=port)
        self.n = ZNames()
        self.slots = [None, None, None]
        self.admin = None
        self.out = []  # this step's raw events
        self.anchor_labels = {}

    # -- plumbing --
    def conn(self, label):
        return rf.Conn(self.ctx, label)

    def handshake(self, label, session=0, passwd=None, last_zxid=0):
        """-> (conn, text)"""
        c = self.conn(label)
        c.send(rf.frame(rf.connect_req(timeout=SESSION_TIMEOUT, session=session, passwd=passwd,
                                       last_zxid=last_zxid)))
        kind, payload = c.read_frame(REPLY_TIMEOUT)
        if kind != "frame":
            return c, "connect: " + noreply(kind, payload)
        r = rf.R(payload)
        try:
            proto, to, sid, pw = r.i32(), r.i32(), r.i64(), r.buf()
            ro = r.bln() if r.left() else None
        except rf.Short:
            return c, "connect: undecodable %s" % payload.hex()
        c.session, c.passwd = sid, pw
        sname = self.n.session(sid, create=True)
        if sid and pw and pw not in self.n.passwords:
            self.n.passwords[pw] = sname
        return c, "connect -> len=%d proto=%d to=%d sid=%s pw=%s ro=%s" % (
            len(payload), proto, to, sname, self.n.passwd(pw), "-" if ro is None else int(ro))

    def send(self, c, opcode, body, xid=None):
        if c is None or c.closed:
            return None
        if xid is None:
            xid = c.next_xid()
        if not c.send(rf.frame(rf.i32(xid) + rf.i32(opcode) + body)):
            return None
        return xid

    def read_reply(self, c, xid, timeout=REPLY_TIMEOUT):
        """-> (status, notes, (rxid, zxid, err, reader) | payload)"""
        notes = []
        while True:
            kind, payload = c.read_frame(timeout)
            if kind != "frame":
                return kind, notes, payload
            r = rf.R(payload)
            try:
                rxid, zxid, err = r.i32(), r.i64(), r.i32()
            except rf.Short:
                return "short", notes, payload
            if rxid == -1:
                try:
                    typ, state, path = r.i32(), r.i32(), r.ustr()
                except rf.Short:
                    typ, state, path = -99, -99, "undecodable:" + payload.hex()
                notes.append((zxid, typ, state, path, err))
                continue
            return "ok", notes, (rxid, zxid, err, r)

    # -- admin session (super): cleanup and container probes --
    def open_admin(self):
        self.admin, text = self.handshake("admin")
        if self.admin.closed or self.admin.session is None:
            raise RuntimeError("%s: admin session: %s" % (self.kind, text))
        x = self.send(self.admin, OP["auth"], rf.i32(0) + rf.ustr("digest") + rf.buf("%s:%s" % SUPER), xid=-4)
        self.read_reply(self.admin, x)

    def admin_req(self, opcode, body):
        x = self.send(self.admin, opcode, body)
        if x is None:
            raise RuntimeError("%s: admin connection closed" % self.kind)
        st, _, res = self.read_reply(self.admin, x)
        if st != "ok":
            raise RuntimeError("%s: admin request %d: %s" % (self.kind, opcode, st))
        return res

    def rmr(self, path):
        rxid, z, err, r = self.admin_req(OP["getChildren"], rf.ustr(path) + rf.bln(False))
        if err != 0:
            return
        for child in r.strs() or []:
            self.rmr(path.rstrip("/") + "/" + child)
        self.admin_req(OP["delete"], rf.ustr(path) + rf.i32(-1))

    def probe(self, paths):
        """{path: (nc, cv) or None} via pipelined exists on the admin session."""
        xids = []
        for p in paths:
            xids.append((p, self.send(self.admin, OP["exists"], rf.ustr(absp(self.root, p)) + rf.bln(False))))
        out = {}
        for p, x in xids:
            st, _, res = self.read_reply(self.admin, x)
            if st != "ok":
                raise RuntimeError("%s: probe: %s" % (self.kind, st))
            rxid, z, err, r = res
            if err == 0:
                s = r.stat()
                out[p] = (s[10], s[6])
            else:
                out[p] = None
        return out

    def close_all(self):
        for c in self.slots + [self.admin]:
            if c is not None and not c.closed:
                try:
                    c.send(rf.frame(rf.i32(c.next_xid()) + rf.i32(OP["closeSession"])))
                    c.read_frame(1.0)
                except OSError:
                    pass
            if c is not None:
                c.shutdown()

    # -- step events --
    def line(self, text):
        self.out.append(("line", text))

    def barrier_send(self):
        sent = []
        for i, c in enumerate(self.slots):
            if c is not None and not c.closed:
                if c.send(rf.frame(rf.i32(-2) + rf.i32(OP["ping"]))):
                    sent.append(i)
        return sent

    def barrier_read(self, sent):
        for i in sent:
            c = self.slots[i]
            st, notes, res = self.read_reply(c, -2)
            self.out.append(("notes", i, "", notes))
            if st != "ok":
                self.line("%s barrier ping: %s" % (SLOTS[i], noreply(st, res)))
            else:
                rxid, z, err, r = res
                self.out.append(("ping", i, c, rxid, z, err))

    def barrier(self):
        self.barrier_read(self.barrier_send())


def noreply(kind, payload):
    if kind == "eof":
        return "closed (no reply)"
    if kind == "timeout":
        return "no reply within %gs" % REPLY_TIMEOUT
    return "%s %s" % (kind, payload[:40].hex() if isinstance(payload, (bytes, bytearray)) else "")


# ------------------------------------------------------------- rendering ---

WRITES = {1, 2, 5, 7, 14, 15, 19, 21, -11}


def render_items(n, root, opcode, items):
    out = []
    for it in items:
        kind = it[0]
        if kind == "stat":
            out.append(rf.render_stat(n, it))
        elif kind == "path":
            out.append("path=" + relp(root, it[1]))
        elif kind == "data":
            out.append("data=" + show_data(it[1]))
        elif kind == "children":
            out.append("children=" + ("null" if it[1] is None else "[" + ",".join(sorted(it[1])) + "]"))
        elif kind == "paths":
            out.append("paths=" + ("null" if it[1] is None else
                                   "[" + ",".join(sorted(relp(root, p) for p in it[1])) + "]"))
        elif kind == "acl":
            # Sorted: Apache expands an "auth" ACL from a hash set of the session's ids, so the
            # order of those entries is not part of the contract (accepted difference).
            out.append("acl=" + ("null" if it[1] is None else "[" + ",".join(sorted("%d:%s:%s" % a for a in it[1])) + "]"))
        elif kind == "ids":
            out.append("ids=" + ("null" if it[1] is None else "[" + ",".join(sorted("%s:%s" % a for a in it[1])) + "]"))
        elif kind == "multi":
            parts = []
            for res in it[1]:
                t = res[0]
                if t == "error":
                    parts.append("error %s" % errname(res[1]))
                elif t == "create":
                    parts.append("create " + relp(root, res[1]))
                elif t in ("create2", "createContainer", "createTTL"):
                    parts.append("%s %s %s" % (t, relp(root, res[1]), rf.render_stat(n, res[2])))
                elif t == "setData":
                    parts.append("setData " + rf.render_stat(n, res[1]))
                elif t == "getData":
                    parts.append("getData %s %s" % (show_data(res[1]), rf.render_stat(n, res[2])))
                elif t == "getChildren":
                    parts.append("getChildren " + ("null" if res[1] is None else "[" + ",".join(sorted(res[1])) + "]"))
                else:
                    parts.append(" ".join(str(x) for x in res))
            out.append("results=[" + "; ".join(parts) + "]")
        else:
            out.append("%s=%s" % (kind, it[1]))
    return " ".join(out)


def errname(err):
    return "%d %s" % (err, rf.ERRNAME.get(err, "?")) if err else "0"


def render_notes(n, root, label, notes, tag=""):
    lines = []
    shown = []
    # sorted before the zxids are named, so that "#n" names do not depend on arrival order
    for z, typ, state, path, err in sorted(notes, key=lambda x: (relp(root, x[3]), x[1], x[2], x[4])):
        shown.append((relp(root, path), rf.EVENTNAME.get(typ, str(typ)), n.ref(z), state, err))
    for path, ev, zn, state, err in sorted(shown):
        lines.append("  %s notify%s %s %s z=%s%s%s" % (label, tag, ev, path, zn,
                                                         "" if state == 3 else " state=%d" % state,
                                                         "" if err == 0 else " err=%d" % err))
    return lines


def render_side(side, step):
    """Turn side.out (raw events of one step) into text lines; name write zxids first."""
    n, root = side.n, side.root
    # 1. anchors: successful writes of this step
    for ev in side.out:
        if ev[0] == "reply":
            _, slot, c, opcode, st, notes, res, items = ev
            if st == "ok":
                rxid, z, err, _r = res
                if opcode in WRITES and err == 0 and rf.multi_ok(items):
                    ev_label = n.anchor(z, step)
                    c.max_zxid = z if c.max_zxid is None else max(c.max_zxid, z)
                    side.anchor_labels[id(ev)] = ev_label
    lines = []
    for ev in side.out:
        kind = ev[0]
        if kind == "line":
            lines.append(ev[1])
        elif kind == "reply":
            _, slot, c, opcode, st, notes, res, items = ev
            label = SLOTS[slot]
            lines.extend(render_notes(n, root, label, notes, "(before reply)"))
            if st != "ok":
                lines.append("%s -> %s" % (label, noreply(st, res)))
                continue
            rxid, z, err, r = res
            zn = side.anchor_labels.get(id(ev)) or n.loose(z, c)
            body = render_items(n, root, opcode, items)
            tail = ""
            if r.left():
                tail = " trailing=%s" % r.take(r.left()).hex()
            lines.append("%s -> %sz=%s err=%s%s%s" % (label, "" if rxid == c.last_sent_xid else "x=%d " % rxid,
                                                       zn, errname(err), (" " + body) if body else "", tail))
        elif kind == "notes":
            _, slot, tag, notes = ev
            lines.extend(render_notes(n, root, SLOTS[slot], notes, tag))
        elif kind == "ping":
            _, slot, c, rxid, z, err = ev
            zn = n.loose(z, c)
            if zn not in ("~",) or err != 0 or rxid != -2:
                lines.append("%s barrier ping -> x=%d z=%s err=%s" % (SLOTS[slot], rxid, zn, errname(err)))
    side.out = []
    side.anchor_labels = {}
    return lines


# ------------------------------------------------------------------ pair ---


class Divergence(Exception):
    pass


class Run:
    """One op stream against both servers."""

    def __init__(self, ports, root, log=None):
        self.root = root
        self.sides = [Side(kind, port, root) for kind, port in zip(SIDES, ports)]
        self.history = []  # (step, desc, lines)
        self.containers = set()  # rel paths of the containers the stream created
        self.watches = [self.no_watches() for _ in SLOTS]
        self.log = log
        self.step = 0
        self.stats = {"gc_waits": 0, "gc_s": 0.0}

    @staticmethod
    def no_watches():
        return {"data": set(), "exist": set(), "child": set(), "persistent": set(), "recursive": set()}

    # -- set-up / tear-down --
    def setup(self):
        for s in self.sides:
            s.open_admin()
            s.rmr(self.root)
        self.step = 0
        for s in self.sides:
            x = s.send(s.admin, OP["create"], rf.create_body(self.root, b"", rf.OPEN_ACL, 0))
            st, notes, res = s.read_reply(s.admin, x)
            if st != "ok" or res[2] != 0:
                raise RuntimeError("%s: cannot create %s" % (s.kind, self.root))
            s.n.anchor(res[1], 0)
            for i in range(3):
                c, text = s.handshake(SLOTS[i])
                s.slots[i] = c
                s.line("%s %s" % (SLOTS[i], text))
        self.compare("setup: create R on the admin session, connect A B C")

    def teardown(self):
        for s in self.sides:
            try:
                for i, c in enumerate(s.slots):
                    if c is not None and not c.closed:
                        x = s.send(c, OP["closeSession"], b"")
                        s.read_reply(c, x, 2.0)
                    if c is not None:
                        c.shutdown()
                if s.admin is not None and not s.admin.closed:
                    s.rmr(self.root)
            except Exception:  # cleanup only
                pass
            s.close_all()

    # -- compare --
    def compare(self, desc, op=None):
        outs = [render_side(s, self.step) for s in self.sides]
        if outs[0] != outs[1]:
            raise Divergence({"step": self.step, "desc": desc, "op": op,
                              "lines": dict(zip(SIDES, outs)), "history": list(self.history)})
        self.count(op, outs[0])
        self.history.append((self.step, desc, outs[0]))
        del self.history[:-HISTORY]
        if self.log:
            self.log("%d %s" % (self.step, desc))
            for line in outs[0]:
                self.log("    " + line)
        return outs[0]

    def count(self, op, lines):
        """Coverage counters (from the reference's lines): op kind -> outcome, events."""
        cov = self.stats.setdefault("coverage", {})
        kind = op["k"] if op else "other"
        for line in lines:
            m = re.search(r" -> .*?err=(-?\d+)( \w+)?", line)
            if m and not line.startswith(" "):
                key = "%s %s" % (kind, (m.group(2) or " OK").strip() if m.group(1) != "0" else "OK")
                cov[key] = cov.get(key, 0) + 1
                if kind == "multi":
                    for e in re.findall(r"error (-\d+ \w+)", line):
                        cov["multi-op " + e] = cov.get("multi-op " + e, 0) + 1
            m = re.search(r"notify(?:\(before reply\))? (\w+)", line)
            if m:
                key = "event " + m.group(1)
                cov[key] = cov.get(key, 0) + 1

    # -- one step --
    def ensure_slot(self, side, i):
        c = side.slots[i]
        if c is None or c.closed:
            if c is not None:
                c.shutdown()
            c, text = side.handshake(SLOTS[i])
            side.slots[i] = c
            side.line("%s (connection was closed) new session: %s" % (SLOTS[i], text))
            self.watches[i] = self.no_watches()

    def do(self, op, gen=None):
        self.step += 1
        k, i = op["k"], op["s"]
        desc = describe(op)
        for s in self.sides:
            self.ensure_slot(s, i)
        learned = {}
        if k == "close":
            for s in self.sides:
                self.do_close(s, i)
            self.watches[i] = self.no_watches()
        elif k == "resume":
            for s in self.sides:
                self.do_resume(s, i, op)
        else:
            opcode, body = build_request(self.root, op)
            xids = []
            for s in self.sides:
                c = s.slots[i]
                xid = -4 if k == "auth" else None
                x = s.send(c, opcode, body, xid)
                c.last_sent_xid = x
                xids.append(x)
            for s, x in zip(self.sides, xids):
                c = s.slots[i]
                if x is None:
                    s.line("%s -> not sent: connection closed" % SLOTS[i])
                    continue
                st, notes, res = s.read_reply(c, x)
                items = []
                if st == "ok" and res[2] == 0:
                    try:
                        items = rf.decode_body(opcode, res[3])
                    except rf.Short:
                        items = [("undecodable", res[3].b[16:].hex())]
                s.out.append(("reply", i, c, opcode, st, notes, res, items))
                if s is self.sides[0]:
                    learned = self.learn(op, opcode, st, res, items)
        for s in self.sides:
            s.barrier()
        self.compare(desc, op)
        if gen is not None and learned:
            gen.learn(op, learned)
        if self.containers and (k in ("delete", "multi", "close", "resume") or learned.get("deleted")):
            self.collect_garbage(desc)

    def learn(self, op, opcode, st, res, items):
        """What the reference's reply says about versions, sequential names,
        containers and this slot's watches."""
        out = {"stats": [], "deleted": [], "created_seq": []}
        if st != "ok":
            return out
        err = res[2]
        k, i = op["k"], op["s"]
        w = self.watches[i]
        rel = lambda p: p[len(self.root) + 1:] if p.startswith(self.root + "/") else ("" if p == self.root else None)  # noqa: E731
        stats = [it for it in items if it[0] == "stat"]
        path = op.get("path")
        if k == "create" and err == 0:
            p = rel(items[0][1])
            if p is not None:
                if op["flags"] in (2, 3, 6):
                    out["created_seq"].append(p)
                if stats:
                    out["stats"].append((p, stats[0]))
                else:
                    out["stats"].append((p, ("stat", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)))
                if op["op"] == 19:  # (a create/create2 with flags 4 makes no container)
                    self.containers.add(p)
                else:
                    self.containers.discard(p)
        elif k == "delete" and err == 0:
            out["deleted"].append(path)
            self.containers.discard(path)
        elif k in ("exists", "getData", "getChildren2", "setData", "setACL", "getACL") and err == 0 and stats:
            out["stats"].append((path, stats[0]))
        if op.get("w"):
            if k == "exists":
                (w["data"] if err == 0 else w["exist"]).add(path)
            elif k == "getData" and err == 0:
                w["data"].add(path)
            elif k in ("getChildren", "getChildren2") and err == 0:
                w["child"].add(path)
        if k == "addWatch" and err == 0:
            w["recursive" if op["mode"] == 1 else "persistent"].add(path)
        if k == "multi" and err == 0 and items:
            results = items[0][1]
            if all(r[0] != "error" for r in results):
                for sub, r in zip(op["ops"], results):
                    if sub["t"] == "create":
                        p = rel(r[1])
                        if p is None:
                            continue
                        if sub["flags"] in (2, 3, 6):
                            out["created_seq"].append(p)
                        if len(r) > 2:
                            out["stats"].append((p, r[2]))
                        if sub["op"] == 19 or sub["flags"] == 4:
                            # Apache ZooKeeper 3.9.5 rebuilds a multi's create ops from
                            # their flags: the container flag makes a container
                            self.containers.add(p)
                        else:
                            self.containers.discard(p)
                    elif sub["t"] == "setData":
                        out["stats"].append((sub["path"], r[1]))
                    elif sub["t"] == "delete":
                        out["deleted"].append(sub["path"])
                        self.containers.discard(sub["path"])
        if k == "multiRead" and err == 0 and items:
            for sub, r in zip(op["ops"], items[0][1]):
                if sub["w"] and r[0] == "getData":
                    w["data"].add(sub["path"])
                elif sub["w"] and r[0] == "getChildren":
                    w["child"].add(sub["path"])
                if r[0] == "getData":
                    out["stats"].append((sub["path"], r[2]))
        return out

    def do_close(self, s, i):
        c = s.slots[i]
        x = s.send(c, OP["closeSession"], b"")
        c.last_sent_xid = x
        st, notes, res = s.read_reply(c, x)
        s.out.append(("reply", i, c, OP["closeSession"], st, notes, res, []))
        if st == "ok":
            s.out.append(("line", "%s %s" % (SLOTS[i], wait_eof(c))))
        c.shutdown()
        c2, text = s.handshake(SLOTS[i])
        s.slots[i] = c2
        s.line("%s new session: %s" % (SLOTS[i], text))

    def do_resume(self, s, i, op):
        old = s.slots[i]
        last = old.max_zxid or 0
        c, text = s.handshake(SLOTS[i], session=old.session, passwd=old.passwd, last_zxid=last)
        s.line("%s resume(lastZxid=last seen): %s" % (SLOTS[i], text))
        s.line("%s old connection: %s" % (SLOTS[i], wait_eof(old)))
        old.shutdown()
        s.slots[i] = c
        c.max_zxid = old.max_zxid
        if c.closed:
            return
        w = self.watches[i]
        if op.get("setwatches") and any(w.values()):
            lists = [sorted(w["data"]), sorted(w["exist"]), sorted(w["child"])]
            v2 = op.get("v2") or w["persistent"] or w["recursive"]
            if v2:
                lists += [sorted(w["persistent"]), sorted(w["recursive"])]
            body = rf.i64(last) + b"".join(rf.str_vec([absp(self.root, p) for p in lst]) for lst in lists)
            opcode = OP["setWatches2"] if v2 else OP["setWatches"]
            s.line("%s %s(%s)" % (SLOTS[i], "setWatches2" if v2 else "setWatches",
                                  " ".join("%s=%s" % (name, ",".join(lst) or "-") for name, lst in
                                           zip(["data", "exist", "child", "persistent", "recursive"], lists))))
            x = s.send(c, opcode, body, xid=-8)
            c.last_sent_xid = x
            st, notes, res = s.read_reply(c, x)
            s.out.append(("reply", i, c, opcode, st, notes, res, []))

    # -- containers --
    def collect_garbage(self, desc):
        """Wait until every container due for deletion is gone on both servers."""
        for _round in range(6):
            paths = sorted(self.containers)
            if not paths:
                return
            probes = [s.probe(paths) for s in self.sides]
            due = [p for p in paths if any(pr[p] is not None and pr[p][0] == 0 and pr[p][1] > 0 for pr in probes)]
            for p in paths:
                if p not in due and all(pr[p] is None for pr in probes):
                    self.containers.discard(p)
            if not due:
                return
            self.stats["gc_waits"] += 1
            t0 = time.monotonic()
            deadline = t0 + GC_WAIT
            while True:
                probes = [s.probe(due) for s in self.sides]
                if all(pr[p] is None for pr in probes for p in due) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.stats["gc_s"] += time.monotonic() - t0
            for s, pr in zip(self.sides, probes):
                for p in due:
                    s.line("gc %s: %s" % ("R/" + p if p else "R", "deleted" if pr[p] is None else "still there"))
                s.barrier()
            self.containers.difference_update(due)
            self.compare("(container deletion after step %d: %s)" % (self.step, desc))


def wait_eof(c):
    """Wait (bounded) for the server to close c; describe what happened."""
    deadline = time.monotonic() + CLOSE_WAIT
    extra = []
    while True:
        kind, payload = c.read_frame(max(deadline - time.monotonic(), 0.01))
        if kind == "frame":
            extra.append(frame_text(payload))
            continue
        text = "closed" if kind != "timeout" else "still open after %gs" % CLOSE_WAIT
        return text + (" frames=%s" % extra if extra else "")


def frame_text(payload):
    try:
        r = rf.R(payload)
        xid = r.i32()
        r.i64()
        err = r.i32()
        if xid == -1:
            typ, state, path = r.i32(), r.i32(), r.ustr()
            return "notify %s %s state=%d" % (rf.EVENTNAME.get(typ, typ), path, state)
        return "reply x=%d err=%d" % (xid, err)
    except rf.Short:
        return payload[:32].hex()


# ------------------------------------------------------------ seed runs ---


def run_ops(ports, root, ops=None, seed=None, count=0, log=None):
    """Run a generated stream (seed, count) or a recorded op list; returns a result dict."""
    run = Run(ports, root, log)
    gen = Gen(seed) if ops is None else None
    done = []
    t0 = time.monotonic()
    result = {"seed": seed, "root": root, "divergence": None}
    try:
        run.setup()
        n = count if ops is None else len(ops)
        for j in range(n):
            op = gen.next() if gen else ops[j]
            done.append(op)
            run.do(op, gen)
    except Divergence as d:
        result["divergence"] = d.args[0]
    finally:
        run.teardown()
    result["ops"] = done
    result["steps"] = run.step
    result["duration_s"] = round(time.monotonic() - t0, 1)
    result["gc_waits"] = run.stats["gc_waits"]
    result["gc_s"] = round(run.stats["gc_s"], 1)
    result["coverage"] = run.stats.get("coverage", {})
    return result


def servers_down(ports):
    """The servers that no longer accept connections."""
    down = []
    for kind, port in zip(SIDES, ports):
        try:
            socket.create_connection((rf.HOST, port), timeout=3).close()
        except OSError:
            down.append(kind)
    return down


def signature(div):
    """A coarse key for de-duplicating divergences: the op kind and the first
    differing tokens of the first differing line (step numbers, session
    names, Stats, data and paths masked)."""
    a, f = div["lines"]["apache"], div["lines"]["ferrokeeper"]
    kind = div["op"]["k"] if div.get("op") else div["desc"].split(":")[0]

    def mask(line):
        line = re.sub(r"stat\([^)]*\)", "stat()", line)
        line = re.sub(r"(data|ids|acl|children|paths)=(\[[^]]*\]|\S+)", r"\1=*", line)
        line = re.sub(r"R/\S*", "R/*", line)
        line = re.sub(r"[@#]\d+", "@", re.sub(r"\bS\d+", "S", line))
        return line.split()
    for x, y in zip(a + [""] * len(f), f + [""] * len(a)):
        if x != y:
            tx, ty = mask(x), mask(y)
            sm = difflib.SequenceMatcher(None, tx, ty)
            diffs = [(" ".join(tx[i1:i2])[:70], " ".join(ty[j1:j2])[:70])
                     for tag, i1, i2, j1, j2 in sm.get_opcodes() if tag != "equal"]
            return "%s: %s" % (kind, "; ".join("%s | %s" % d for d in diffs[:2]))
    return kind


def format_divergence(res):
    d = res["divergence"]
    out = ["DIVERGENCE seed=%s step=%d (root %s)" % (res["seed"], d["step"], res["root"]),
           "  op: %s" % d["desc"]]
    if d.get("op") is not None:
        out.append("  op json: %s" % json.dumps(d["op"], sort_keys=True))
    for side in SIDES:
        out.append("  %s:" % side)
        out.extend("    " + line for line in d["lines"][side] or ["(nothing)"])
    out.append("  diff (apache -> ferrokeeper):")
    out.extend("    " + line for line in difflib.unified_diff(
        d["lines"]["apache"], d["lines"]["ferrokeeper"], "apache", "ferrokeeper", n=1, lineterm="")
        if not line.startswith(("---", "+++")))
    out.append("  signature: %s" % signature(d))
    out.append("  last %d steps (identical on both):" % len(d["history"]))
    for step, desc, lines in d["history"]:
        out.append("    %d %s" % (step, desc))
        out.extend("        " + line for line in lines)
    return "\n".join(out)


def minimize(ports, ops, sig, tag, say, budget_s=600):
    """Shrink a diverging op list (chunk removal, ddmin-style) keeping its signature."""
    t0 = time.monotonic()
    tries = [0]

    def test(cand):
        tries[0] += 1
        res = run_ops(ports, "/diffmin-%s-%d" % (tag, tries[0]), ops=cand)
        d = res["divergence"]
        if d and signature(d) == sig:
            return res["ops"]  # truncated at the divergence
        return None

    cur = list(ops)
    n = 2
    while len(cur) > 1 and time.monotonic() - t0 < budget_s:
        chunk = max(1, len(cur) // n)
        removed = False
        for start in range(0, len(cur), chunk):
            if time.monotonic() - t0 > budget_s:
                break
            cand = cur[:start] + cur[start + chunk:]
            got = test(cand) if cand else None
            if got is not None:
                cur = got
                n = max(n - 1, 2)
                removed = True
                break
        if not removed:
            if chunk == 1:
                break
            n = min(len(cur), n * 2)
    say("  minimized to %d ops in %d replays (%.0fs)" % (len(cur), tries[0], time.monotonic() - t0))
    return cur


# --------------------------------------------------------------- servers ---


def start_servers(base_port, say, names=("diff-apache", "diff-ferrokeeper")):
    lib = COMPAT_DIR / "lib"
    ports = (base_port, base_port + 100)
    started = []
    for kind, script, name, port in zip(SIDES, ("apache-zk.sh", "ferrokeeper.sh"), names, ports):
        p = subprocess.run(["bash", str(lib / script), "start", name, str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            say(p.stdout)
            stop_servers(started, say)
            raise SystemExit("%s did not start (exit %d)" % (kind, p.returncode))
        say("  " + (p.stdout.strip().splitlines() or ["started %s" % name])[-1])
        started.append((script, name))
    return ports, started


def stop_servers(started, say):
    lib = COMPAT_DIR / "lib"
    for script, name in started:
        p = subprocess.run(["bash", str(lib / script), "stop", name],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            say(p.stdout)


def run_seeds(ports, seeds, ops, say, out_dir=RESULTS, minimize_budget=0, verbose_log=None, brief=False):
    """Run each seed; returns the summary dict (also written to out_dir/summary.json)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = "%x" % (int(time.time() * 1000) & 0xFFFFFFF)
    summary = {"seeds": [], "ops_per_seed": ops, "weights": WEIGHT_ARGS, "passed": 0, "failed": 0, "errors": 0,
               "ops_total": 0, "signatures": {}}
    t0 = time.monotonic()
    for seed in seeds:
        root = "/diff-%d-%s" % (seed, stamp)
        try:
            res = run_ops(ports, root, seed=seed, count=ops, log=verbose_log)
            down = servers_down(ports) if res["divergence"] else []
        except Exception as e:  # a server died or the driver broke
            res, down = None, servers_down(ports)
            err = "%s: %s" % (type(e).__name__, e)
        if down:
            err = "%s stopped answering%s" % (" and ".join(down), " (at step %d)" % res["steps"] if res else "")
            if res:
                (out_dir / ("seed-%d.txt" % seed)).write_text(format_divergence(res) + "\n")
                (out_dir / ("seed-%d.ops.json" % seed)).write_text(json.dumps(
                    {"seed": seed, "ops": res["ops"], "weights": WEIGHT_ARGS}, indent=0) + "\n")
        if res is None or down:
            say("seed %d: ERROR %s" % (seed, err))
            summary["errors"] += 1
            summary["seeds"].append({"seed": seed, "error": err})
            if down:
                say("a server is down; the remaining seeds are not run")
                break
            continue
        entry = {"seed": seed, "steps": res["steps"], "duration_s": res["duration_s"],
                 "gc_waits": res["gc_waits"], "gc_s": res["gc_s"]}
        cov = summary.setdefault("coverage", {})
        for key, v in res["coverage"].items():
            cov[key] = cov.get(key, 0) + v
        summary["ops_total"] += len(res["ops"])
        if res["divergence"] is None:
            summary["passed"] += 1
            say("seed %d: %d ops, no divergence (%.1fs, %d container waits %.1fs)" % (
                seed, len(res["ops"]), res["duration_s"], res["gc_waits"], res["gc_s"]))
        else:
            summary["failed"] += 1
            text = format_divergence(res)
            sig = signature(res["divergence"])
            entry["divergence_step"] = res["divergence"]["step"]
            entry["signature"] = sig
            summary["signatures"].setdefault(sig, []).append(seed)
            (out_dir / ("seed-%d.txt" % seed)).write_text(text + "\n")
            (out_dir / ("seed-%d.ops.json" % seed)).write_text(json.dumps(
                {"seed": seed, "ops": res["ops"], "signature": sig, "weights": WEIGHT_ARGS}, indent=0) + "\n")
            say("seed %d: divergence at step %d (%.1fs)" % (seed, res["divergence"]["step"], res["duration_s"]))
            say(text.split("\n  last ")[0] + "\n  (full report: %s)" % (out_dir / ("seed-%d.txt" % seed))
                if brief else text)
            if minimize_budget > 0 and len(summary["signatures"][sig]) == 1:  # once per signature
                small = minimize(ports, res["ops"], sig, "%d-%s" % (seed, stamp), say, minimize_budget)
                mres = run_ops(ports, "/diffmin-%d-%s-final" % (seed, stamp), ops=small)
                (out_dir / ("seed-%d.min.ops.json" % seed)).write_text(json.dumps(
                    {"seed": seed, "ops": small, "signature": sig}, indent=0) + "\n")
                if mres["divergence"]:
                    mtext = format_divergence(mres)
                    (out_dir / ("seed-%d.min.txt" % seed)).write_text(mtext + "\n")
                    say("minimal reproduction (%d ops; --replay %s):" % (
                        len(small), out_dir / ("seed-%d.min.ops.json" % seed)))
                    for j, op in enumerate(small, 1):
                        say("  %d %s" % (j, describe(op)))
                    say(mtext)
        summary["seeds"].append(entry)
    summary["duration_s"] = round(time.monotonic() - t0, 1)
    summary["coverage"] = dict(sorted(summary.get("coverage", {}).items()))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# ---------------------------------------------------------------- harness ---


def harness_cells(servers, runnable, base_port, port_for, start_server, stop_server, say):
    """compat.py's entry point: {(server, "differential"): cell}. Needs both servers."""
    suite = "differential"
    if not all(s in servers for s in SIDES):
        return {(s, suite): {"status": "not run", "reason": "needs both servers"} for s in servers}
    missing = [s for s in SIDES if s not in runnable]
    if missing:
        return {(s, suite): {"status": "not run", "reason": "needs both servers (%s not built)" % ", ".join(missing)}
                for s in SIDES}
    seeds = int(os.environ.get("COMPAT_DIFF_SEEDS", DEFAULT_SEEDS))
    ops = int(os.environ.get("COMPAT_DIFF_OPS", DEFAULT_OPS))
    started, ports = [], []
    for s in SIDES:
        port = port_for(s, suite, base_port)
        say("== %s on %s (127.0.0.1:%d)" % (suite, s, port))
        failure = start_server(s, "%s-%s" % (s, suite), port)
        if failure:
            for t in started:
                stop_server(t, "%s-%s" % (t, suite))
            cells = {(t, suite): {"status": "not run", "reason": "needs both servers (%s: %s)" % (s, failure[1])}
                     for t in SIDES}
            cells[(s, suite)] = {"status": failure[0], "reason": failure[1]}
            return cells
        started.append(s)
        ports.append(port)
    t = time.monotonic()
    try:
        for f in RESULTS.glob("*"):
            if f.is_file():
                f.unlink()
        summary = run_seeds(tuple(ports), range(1, seeds + 1), ops, lambda m: say("  " + m.replace("\n", "\n  ")),
                            brief=True)
    except Exception as e:
        summary = None
        err = "%s: %s" % (type(e).__name__, e)
    finally:
        for s in started:
            stop_server(s, "%s-%s" % (s, suite))
    dur = round(time.monotonic() - t, 1)
    if summary is None:
        return {(s, suite): {"status": "error", "reason": err, "duration_s": dur} for s in SIDES}
    ok_runs = summary["passed"] + summary["failed"]
    apache = {"status": "ran", "passed": ok_runs, "failed": summary["errors"], "skipped": 0,
              "duration_s": dur, "note": "reference: seeds that ran to the end or to a divergence"}
    ferro = {"status": "ran", "passed": summary["passed"], "failed": summary["failed"] + summary["errors"],
             "skipped": 0, "duration_s": dur, "ops_per_seed": ops, "ops_total": summary["ops_total"],
             "diverging_seeds": {str(e["seed"]): e.get("signature") for e in summary["seeds"] if "signature" in e},
             "summary": str(RESULTS / "summary.json")}
    return {("apache", suite): apache, ("ferrokeeper", suite): ferro}


# ------------------------------------------------------------------- main ---


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="run seeds 1..N (default %d)" % DEFAULT_SEEDS)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--seed", type=int, help="run this one seed")
    ap.add_argument("--ops", type=int, default=DEFAULT_OPS, help="operations per seed (default %d)" % DEFAULT_OPS)
    ap.add_argument("--base-port", type=int, default=28181,
                    help="Apache ZooKeeper on this port, ferrokeeper on +100 (each also uses +1, +2)")
    ap.add_argument("--apache-port", type=int, help="use an Apache ZooKeeper already running here")
    ap.add_argument("--ferrokeeper-port", type=int, help="use a ferrokeeper already running here")
    ap.add_argument("--replay", help="replay the op list of a seed-N.ops.json file instead")
    ap.add_argument("--minimize", action="store_true", help="shrink each divergence to a small op list")
    ap.add_argument("--minimize-budget", type=int, default=600, help="seconds per divergence (default 600)")
    ap.add_argument("--weight", action="append", default=[], metavar="KIND:NAME=W",
                    help="change a weight of the generator, e.g. op:setACL=0 or acl:digest1=0 "
                         "(acl:*=0 leaves only open ACLs) or a switch, e.g. knob:resume-bare=0; repeatable")
    ap.add_argument("--avoid-known", action="store_true",
                    help="the --weight settings that avoid the divergences found so far: %s" % " ".join(AVOID_KNOWN))
    ap.add_argument("--out-dir", default=str(RESULTS))
    ap.add_argument("-v", "--verbose", action="store_true", help="print every step")
    args = ap.parse_args(argv)
    say = lambda m: print(m, flush=True)  # noqa: E731
    for w in (AVOID_KNOWN if args.avoid_known else []) + args.weight:
        try:
            table, rest = w.split(":", 1)
            name, val = rest.split("=", 1)
            tab = {"op": OP_W, "acl": ACL_W, "knob": KNOBS}[table]
            for key in (list(tab) if name == "*" else [name]):
                if key not in tab:
                    raise KeyError(key)
                if not (table == "acl" and key == "open" and name == "*"):
                    tab[key] = float(val)
        except (ValueError, KeyError) as e:
            ap.error("bad --weight %r (%s)" % (w, e))
        WEIGHT_ARGS.append(w)
    out_dir = Path(args.out_dir)
    started = []
    if args.apache_port and args.ferrokeeper_port:
        ports = (args.apache_port, args.ferrokeeper_port)
    elif args.apache_port or args.ferrokeeper_port:
        ap.error("give both --apache-port and --ferrokeeper-port, or neither")
    else:
        say("starting Apache ZooKeeper on %d and ferrokeeper on %d" % (args.base_port, args.base_port + 100))
        ports, started = start_servers(args.base_port, say)
    try:
        log = say if args.verbose else None
        if args.replay:
            doc = json.loads(Path(args.replay).read_text())
            res = run_ops(ports, "/diffreplay-%x" % (int(time.time() * 1000) & 0xFFFFFFF), ops=doc["ops"], log=log)
            res["seed"] = "replay:%s" % args.replay
            if res["divergence"] is None:
                say("replay: %d ops, no divergence" % len(res["ops"]))
                return 0
            say(format_divergence(res))
            if args.minimize:
                sig = signature(res["divergence"])
                small = minimize(ports, res["ops"], sig, "replay", say, args.minimize_budget)
                path = Path(args.replay).with_suffix(".min.json")
                path.write_text(json.dumps({"ops": small, "signature": sig}, indent=0) + "\n")
                mres = run_ops(ports, "/diffreplay-min-%x" % (int(time.time() * 1000) & 0xFFFFFFF), ops=small)
                mres["seed"] = "replay:%s" % path
                say("minimal reproduction: %s" % path)
                for j, op in enumerate(small, 1):
                    say("  %d %s" % (j, describe(op)))
                if mres["divergence"]:
                    say(format_divergence(mres))
            return 1
        seeds = [args.seed] if args.seed is not None else range(args.first_seed, args.first_seed + args.seeds)
        summary = run_seeds(ports, seeds, args.ops, say, out_dir,
                            args.minimize_budget if args.minimize else 0, log)
        say("differential: %d seeds x %d ops: %d without divergence, %d with, %d errors (%d ops, %.0fs)" % (
            len(summary["seeds"]), args.ops, summary["passed"], summary["failed"], summary["errors"],
            summary["ops_total"], summary["duration_s"]))
        for sig, seeds_ in summary["signatures"].items():
            say("  %s  (seeds %s)" % (sig, ",".join(map(str, seeds_))))
        return 0 if summary["failed"] == 0 and summary["errors"] == 0 else 1
    finally:
        stop_servers(started, say)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
