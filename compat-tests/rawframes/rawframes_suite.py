#!/usr/bin/env python3
"""rawframes suite: hand-built ZooKeeper wire frames, outcome per frame.

    rawframes_suite.py run --port P -o OUT.json [--only CASE,...]
    rawframes_suite.py compare EXPECTED.json ACTUAL.json [--json RESULT.json]
    rawframes_suite.py list

A case is a fixed sequence of raw frames on one or more fresh connections to
127.0.0.1:P. Its outcome is a list of text lines, one for each frame sent
(what came back: ReplyHeader xid/zxid/err and the decoded body), one for each
notification (xid -1) received, and one for each "did the server close the
connection" check. A case passes on a server when its outcome equals the
reference outcome line for line (see compare()).

Normalisation (what makes two servers comparable):

* zxids. Every line is numbered with its step (1, 2, ...) within the case.
  The header zxid of a *successful* write (create*, delete, setData, setACL,
  multi without error, closeSession) is named "@<step>". Any other zxid that
  equals such a value (Stat czxid/mzxid/pzxid, notification zxids, ...) is
  printed as that name. Other Stat/notification zxids: "0" and "-1" stay
  literal, a value not above the zxid read at the start of the case (a ping)
  is "pre", anything else is ">@k" (above the last named write k, but not a
  write of this case). Header zxids of reads, pings and failed writes are
  only checked for the relation clients depend on: "~" if it is not below
  the last named write and not below what the connection saw before,
  "BACK" / "<@k" otherwise; a header zxid of 0 or -1 is printed as such.
* session ids are named S1, S2, ... in order of appearance (ConnectResponse);
  ephemeralOwner is printed as that name, "container" for
  0x8000000000000000, "ttl:<ms>" for 0xFF00..|ttl. Passwords are shown as
  zero16, pw(S<n>) or pw16.
* Stat ctime/mtime: "0" stays, any other value is "T". A case may mask more
  fields ("*"), e.g. the root's cversion/numChildren, which depend on the
  cases before it.
* "closed?" checks: "wait-eof(Ns)" reads until EOF or N seconds pass
  (2 s by default); "closed (no reply)" is an EOF while waiting for a reply
  (3 s at most; "no reply within 3s" otherwise). A case gives up after
  MAX_SILENT unanswered frames in a row (line "ABORTED: ...").
* Child lists and getEphemerals/whoAmI lists are sorted. Notifications that
  arrive between two replies are sorted among themselves (their order within
  one batch is not part of the contract; their position before the next reply
  is).

Standard library only (socket + struct).
"""

import argparse
import base64
import hashlib
import json
import re
import socket
import struct
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "expected.json"
EXPECTED_AUTH = HERE / "expected-enforce-auth.json"  # the enforce_auth group (compat.py's rawauth)
# Cases left out for every server (so counts compare), one per line: "<case>  # reason; issue N".
DESELECTED = HERE / "deselected.txt"


def read_deselected(path=DESELECTED):
    """{case name: reason} from deselected.txt."""
    out = {}
    if not Path(path).exists():
        return out
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, why = line.partition("#")
        out[name.strip()] = why.strip()
    return out
HOST = "127.0.0.1"
SESSION_TIMEOUT = 10000  # ms, for ordinary connections
REPLY_TIMEOUT = 3.0  # s to wait for a reply before recording "no reply"
CLOSE_WAIT = 2.0  # s to wait for EOF where a close is plausible

OP = {
    "notification": 0, "create": 1, "delete": 2, "exists": 3, "getData": 4, "setData": 5,
    "getACL": 6, "setACL": 7, "getChildren": 8, "sync": 9, "ping": 11, "getChildren2": 12,
    "check": 13, "multi": 14, "create2": 15, "reconfig": 16, "checkWatches": 17,
    "removeWatches": 18, "createContainer": 19, "deleteContainer": 20, "createTTL": 21,
    "multiRead": 22, "auth": 100, "setWatches": 101, "sasl": 102, "getEphemerals": 103,
    "getAllChildrenNumber": 104, "setWatches2": 105, "addWatch": 106, "whoAmI": 107,
    "createSession": -10, "closeSession": -11, "error": -1,
}
OPNAME = {v: k for k, v in OP.items()}
WRITE_OPS = {1, 2, 5, 7, 14, 15, 19, 20, 21, -11}
ERRNAME = {
    0: "OK", -1: "SYSTEMERROR", -2: "RUNTIMEINCONSISTENCY", -3: "DATAINCONSISTENCY",
    -4: "CONNECTIONLOSS", -5: "MARSHALLINGERROR", -6: "UNIMPLEMENTED", -7: "OPERATIONTIMEOUT",
    -8: "BADARGUMENTS", -12: "UNKNOWNSESSION", -13: "NEWCONFIGNOQUORUM", -14: "RECONFIGINPROGRESS",
    -100: "APIERROR", -101: "NONODE", -102: "NOAUTH", -103: "BADVERSION",
    -108: "NOCHILDRENFOREPHEMERALS", -110: "NODEEXISTS", -111: "NOTEMPTY", -112: "SESSIONEXPIRED",
    -113: "INVALIDCALLBACK", -114: "INVALIDACL", -115: "AUTHFAILED", -118: "SESSIONMOVED",
    -119: "NOTREADONLY", -120: "EPHEMERALONLOCALSESSION", -121: "NOWATCHER",
    -123: "RECONFIGDISABLED", -124: "SESSIONCLOSEDREQUIRESASLAUTH", -125: "QUOTAEXCEEDED",
    -127: "THROTTLEDOP",
}
EVENTNAME = {-1: "None", 1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged",
             4: "NodeChildrenChanged", 5: "DataWatchRemoved", 6: "ChildWatchRemoved",
             7: "PersistentWatchRemoved"}
CONTAINER_OWNER = -0x8000000000000000
OPEN_ACL = [(31, "world", "anyone")]

# ------------------------------------------------------------ encoding ----


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def bln(v):
    return b"\x01" if v else b"\x00"


def buf(b):
    if b is None:
        return i32(-1)
    if isinstance(b, str):
        b = b.encode("utf-8")
    return i32(len(b)) + b


ustr = buf


def acl_vec(acls):
    if acls is None:
        return i32(-1)
    out = i32(len(acls))
    for perms, scheme, ident in acls:
        out += i32(perms) + ustr(scheme) + ustr(ident)
    return out


def str_vec(items):
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(ustr(s) for s in items)


def frame(payload):
    return i32(len(payload)) + payload


def connect_req(timeout=SESSION_TIMEOUT, session=0, passwd=None, last_zxid=0, readonly=True,
                proto=0):
    body = i32(proto) + i64(last_zxid) + i32(timeout) + i64(session or 0) + buf(passwd or b"\0" * 16)
    if readonly is not None:
        body += bln(readonly)
    return body


def create_body(path, data=b"", acl=OPEN_ACL, flags=0, ttl=None):
    out = ustr(path) + buf(data) + acl_vec(acl) + i32(flags)
    if ttl is not None:
        out += i64(ttl)
    return out


def digest_id(user, password):
    h = hashlib.sha1(("%s:%s" % (user, password)).encode()).digest()
    return "%s:%s" % (user, base64.b64encode(h).decode())


# ------------------------------------------------------------ decoding ----


class Short(Exception):
    pass


class R:
    """A tiny jute reader."""

    def __init__(self, b):
        self.b, self.p = b, 0

    def take(self, n):
        if n < 0 or self.p + n > len(self.b):
            raise Short()
        v = self.b[self.p:self.p + n]
        self.p += n
        return v

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def bln(self):
        return self.take(1)[0] != 0

    def buf(self):
        n = self.i32()
        return None if n == -1 else self.take(n)

    def ustr(self):
        b = self.buf()
        return None if b is None else b.decode("utf-8", "backslashreplace")

    def stat(self):
        return ("stat",) + struct.unpack(">qqqqiiiqiiq", self.take(68))

    def strs(self):
        n = self.i32()
        if n == -1:
            return None
        return [self.ustr() for _ in range(n)]

    def acls(self):
        n = self.i32()
        if n == -1:
            return None
        return [(self.i32(), self.ustr(), self.ustr()) for _ in range(n)]

    def left(self):
        return len(self.b) - self.p


def decode_multi(r):
    results = []
    while True:
        typ, done, err = r.i32(), r.bln(), r.i32()
        if done:
            break
        if typ == -1:
            results.append(("error", r.i32()))
        elif typ == 1:
            results.append(("create", r.ustr()))
        elif typ in (15, 19, 21):
            results.append((OPNAME[typ], r.ustr(), r.stat()))
        elif typ in (2, 13):
            results.append((OPNAME[typ],))
        elif typ == 5:
            results.append(("setData", r.stat()))
        elif typ == 4:
            results.append(("getData", r.buf(), r.stat()))
        elif typ == 8:
            results.append(("getChildren", r.strs()))
        else:
            results.append(("type%d" % typ, err))
            break
    return results


def decode_body(op, r):
    """Decoded response record of a successful reply, as a list of items."""
    if op == 1 or op == 9:
        return [("path", r.ustr())]
    if op in (15, 19, 21):
        return [("path", r.ustr()), r.stat()]
    if op in (3, 5, 7):
        return [r.stat()]
    if op == 4:
        return [("data", r.buf()), r.stat()]
    if op == 6:
        return [("acl", r.acls()), r.stat()]
    if op == 8:
        return [("children", r.strs())]
    if op == 12:
        return [("children", r.strs()), r.stat()]
    if op in (14, 22):
        return [("multi", decode_multi(r))]
    if op == 103:
        return [("paths", r.strs())]
    if op == 104:
        return [("count", r.i32())]
    if op == 102:
        # SASL token; a DIGEST-MD5 challenge's nonce is random, so it is masked
        t = r.buf()
        return [("token", None if t is None else re.sub(rb'nonce="[^"]*"', b'nonce="*"', t))]
    if op == 106:
        return [("errbody", r.i32())]
    if op == 107:
        n = r.i32()
        return [("ids", None if n == -1 else [(r.ustr(), r.ustr()) for _ in range(n)])]
    return []


# -------------------------------------------------------------- naming ----


class Names:
    """zxid and session naming for one case (see module docstring)."""

    def __init__(self):
        self.base = None
        self.anchors = {}  # zxid -> "@step"
        self.last_anchor = None  # (zxid, label)
        self.max_seen = None
        self.sessions = {}  # id -> "S<n>"
        self.passwords = {}  # bytes -> "S<n>"

    def see(self, z):
        if self.max_seen is None or z > self.max_seen:
            self.max_seen = z

    def anchor(self, z, step):
        label = "@%d" % step
        fresh = self.max_seen is None or z > self.max_seen
        if z not in self.anchors:
            self.anchors[z] = label
        self.last_anchor = (z, label)
        self.see(z)
        return label if fresh else "%s(not-new:%s)" % (label, self.ref(z))

    def ref(self, z):
        """A zxid inside a body or notification."""
        if z in self.anchors:
            return self.anchors[z]
        if z in (0, -1):
            return str(z)
        if self.base is not None and 0 < z <= self.base:
            return "pre"
        below = [a for a in self.anchors if a < z]
        if below:
            return ">" + self.anchors[max(below)]
        return ">Z0" if self.base is not None and z > self.base else "?%d" % z

    def loose(self, z, conn):
        """Header zxid of a non-anchor reply: only monotonicity is checked."""
        out = "~"
        if z in (0, -1):
            out = str(z)
        elif conn.max_zxid is not None and z < conn.max_zxid:
            out = "BACK"
        elif self.last_anchor is not None and z < self.last_anchor[0]:
            out = "<" + self.last_anchor[1]
        elif self.base is not None and z < self.base:
            out = "<Z0"
        if z not in (0, -1):
            conn.max_zxid = z if conn.max_zxid is None else max(conn.max_zxid, z)
            self.see(z)
        return out

    def session(self, sid, create=False):
        if sid == 0:
            return "0"
        if sid not in self.sessions:
            if not create:
                return "S?"
            self.sessions[sid] = "S%d" % (len(self.sessions) + 1)
        return self.sessions[sid]

    def owner(self, eo):
        if eo == 0:
            return "0"
        if eo == CONTAINER_OWNER:
            return "container"
        if (eo >> 56) & 0xFF == 0xFF and ((eo >> 40) & 0xFFFF) == 0:
            return "ttl:%d" % (eo & 0xFFFFFFFFFF)
        return self.sessions.get(eo, "S?")

    def passwd(self, pw):
        if pw is None:
            return "null"
        if pw == b"\0" * len(pw):
            return "zero%d" % len(pw)
        if pw in self.passwords:
            return "pw(%s)" % self.passwords[pw]
        return "pw%d" % len(pw)

    def t(self, v):
        return "0" if v == 0 else "T"


def render_stat(n, s, mask=()):
    _, cz, mz, ct, mt, ver, cver, aver, eo, dl, nc, pz = s
    fields = [("c", n.ref(cz)), ("m", n.ref(mz)), ("p", n.ref(pz)), ("ct", n.t(ct)),
              ("mt", n.t(mt)), ("v", ver), ("cv", cver), ("av", aver), ("eo", n.owner(eo)),
              ("dl", dl), ("nc", nc)]
    return "stat(%s)" % " ".join("%s=%s" % (k, "*" if k in mask else v) for k, v in fields)


def render_data(b):
    if b is None:
        return "null"
    return repr(bytes(b))[1:]


def render_item(n, item, mask=()):
    kind = item[0]
    if kind == "stat":
        return render_stat(n, item, mask)
    if kind == "data":
        return "data=" + render_data(item[1])
    if kind in ("children", "paths"):
        return "%s=%s" % (kind, "null" if item[1] is None else "[" + ",".join(sorted(item[1])) + "]")
    if kind == "acl":
        if item[1] is None:
            return "acl=null"
        return "acl=[" + ",".join("%d:%s:%s" % a for a in item[1]) + "]"
    if kind == "ids":
        if item[1] is None:
            return "ids=null"
        return "ids=[" + ",".join(sorted("%s:%s" % a for a in item[1])) + "]"
    if kind == "multi":
        parts = []
        for res in item[1]:
            if res[0] == "error":
                parts.append("error %d %s" % (res[1], ERRNAME.get(res[1], "")))
            else:
                parts.append(" ".join([res[0]] + [render_item(n, x, mask) if isinstance(x, tuple)
                                                  else (render_data(x) if isinstance(x, (bytes, type(None)))
                                                        else str(x)) for x in res[1:]]))
        return "results=[" + "; ".join(parts) + "]"
    return "%s=%s" % (kind, item[1])


def multi_ok(items):
    for it in items:
        if it[0] == "multi":
            return all(r[0] != "error" for r in it[1])
    return True


# ---------------------------------------------------------- connection ----


class Conn:
    def __init__(self, ctx, label):
        self.ctx, self.label = ctx, label
        self.sock = socket.create_connection((HOST, ctx.port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rbuf = b""
        self.closed = False
        self.xid = 0
        self.max_zxid = None
        self.session = None
        self.passwd = None

    def next_xid(self):
        self.xid += 1
        return self.xid

    def send(self, data):
        if self.closed:
            return False
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed = True
            return False

    def _fill(self, n, deadline):
        while len(self.rbuf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return "timeout"
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return "eof"
            self.rbuf += chunk
        return "ok"

    def read_frame(self, timeout):
        """("frame", payload) | ("eof", partial) | ("timeout", None)"""
        if self.closed and not self.rbuf:
            return ("eof", b"")
        deadline = time.monotonic() + timeout
        st = self._fill(4, deadline)
        if st != "ok":
            return (st, self.rbuf if st == "eof" else None)
        n = struct.unpack(">i", self.rbuf[:4])[0]
        if n < 0 or n > 16 * 1024 * 1024:
            data, self.rbuf = self.rbuf, b""
            return ("garbage", data)
        st = self._fill(4 + n, deadline)
        if st != "ok":
            return (st, self.rbuf if st == "eof" else None)
        payload, self.rbuf = self.rbuf[4:4 + n], self.rbuf[4 + n:]
        return ("frame", payload)

    def read_raw_until_eof(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.closed:
            if self._fill(len(self.rbuf) + 1, deadline) != "ok":
                break
        data, self.rbuf = self.rbuf, b""
        return data, self.closed

    def shutdown(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True


# ---------------------------------------------------------------- case ----


class Aborted(Exception):
    pass


# A server that stops answering would cost REPLY_TIMEOUT per remaining frame;
# a case gives up after this many unanswered frames in a row.
MAX_SILENT = 4


class Ctx:
    def __init__(self, port, name):
        self.port, self.name = port, name
        self.root = "/rf-" + name.replace("_", "-")
        self.lines = []
        self.step = 0
        self.n = Names()
        self.conns = []
        self.labels = 0
        self.silent = 0  # unanswered frames in a row

    def _check_silent(self, timed_out):
        if not timed_out:
            self.silent = 0
            return
        self.silent += 1

    def _guard(self):
        if self.silent >= MAX_SILENT:
            raise Aborted("%d frames in a row got no reply; case aborted" % self.silent)

    # -- recording --
    def log(self, line):
        self.lines.append(line)

    def note(self, text):
        self.step += 1
        self.log("%d %s" % (self.step, text))

    def _flush_notes(self, conn, notes):
        for z, typ, state, path, err in sorted(notes, key=lambda x: (x[3] or "", x[1], x[0])):
            self.log("  %s notify z=%s err=%d %s state=%d path=%s" % (
                conn.label, self.n.ref(z), err, EVENTNAME.get(typ, str(typ)), state, path))

    # -- connections --
    def open(self, label=None, record=True, length=45, timeout_s=REPLY_TIMEOUT, **kw):
        """New connection + ConnectRequest. length 44 drops the readOnly byte."""
        self._guard()
        self.labels += 1
        label = label or "c%d" % self.labels
        conn = Conn(self, label)
        self.conns.append(conn)
        if kw.get("readonly", True) is not None and length == 44:
            kw["readonly"] = None
        req = connect_req(**kw)
        desc = "len=%d to=%d sid=%s pw=%s lastZxid=%s" % (
            len(req), kw.get("timeout", SESSION_TIMEOUT),
            self.n.session(kw.get("session") or 0), self.n.passwd(kw.get("passwd") or b"\0" * 16),
            "0" if not kw.get("last_zxid") else "far-ahead")
        conn.send(frame(req))
        kind, payload = conn.read_frame(timeout_s)
        self._check_silent(kind == "timeout")
        if kind != "frame":
            out = self._noreply(kind, payload, timeout_s)
        else:
            r = R(payload)
            try:
                proto, to, sid, pw = r.i32(), r.i32(), r.i64(), r.buf()
                ro = r.bln() if r.left() else None
                sname = self.n.session(sid, create=True)
                pwname = self.n.passwd(pw)
                if sid and pw and pw not in self.n.passwords:
                    self.n.passwords[pw] = sname
                conn.session, conn.passwd = sid, pw
                out = "len=%d proto=%d to=%d sid=%s pw=%s ro=%s" % (
                    len(payload), proto, to, sname, pwname, "-" if ro is None else int(ro))
                if r.left():
                    out += " extra=%s" % r.take(r.left()).hex()
            except Short:
                out = "undecodable=%s" % payload.hex()
        if record:
            self.note("%s connect(%s) -> %s" % (label, desc, out))
        return conn

    def begin(self, **kw):
        """c1 + base zxid + a fresh case root /rf-<case>."""
        c1 = self.open(**kw)
        self.rmr(c1, self.root)
        hdr = self.request(c1, OP["ping"], b"", "", xid=-2, record=False)
        if hdr:
            self.n.base = hdr[1]
            c1.max_zxid = hdr[1]
            self.n.see(hdr[1])
        self.create(c1, self.root)
        return c1

    def rmr(self, c, path):
        res = self.request(c, OP["getChildren"], ustr(path) + bln(False), "", record=False)
        if not res or res[2] != 0:
            return
        for child in res[3][0][1] or []:
            self.rmr(c, path.rstrip("/") + "/" + child)
        self.request(c, OP["delete"], ustr(path) + i32(-1), "", record=False)

    def finish(self):
        for c in self.conns:
            if not c.closed:
                try:
                    c.send(frame(i32(c.next_xid()) + i32(OP["closeSession"])))
                    c.read_frame(1.0)
                except OSError:
                    pass
            c.shutdown()

    def _noreply(self, kind, payload, timeout=REPLY_TIMEOUT):
        if kind == "eof":
            return "closed (no reply)" + (" partial=%s" % payload.hex() if payload else "")
        if kind == "timeout":
            return "no reply within %gs" % timeout
        return "garbage=%s" % (payload[:64].hex() if payload else "")

    # -- requests --
    def request(self, conn, op, body, desc, xid=None, record=True, opname=None, raw=None,
                timeout=REPLY_TIMEOUT, mask=(), render=None):
        """Send one request frame; wait for its reply (collecting notifications).

        Returns (xid, zxid, err, items) or None. raw: bytes to send instead of
        a proper frame (then op is only used to decode the reply)."""
        self._guard()
        if record:
            self.step += 1
        step = self.step
        name = opname or OPNAME.get(op, "op%d" % op)
        head = "%d %s %s(%s)" % (step, conn.label, name, desc)
        if conn.closed:
            if record:
                self.log(head + " -> not sent: connection closed")
            return None
        if xid is None:
            xid = conn.next_xid()
        data = raw if raw is not None else frame(i32(xid) + i32(op) + body)
        if not conn.send(data):
            if record:
                self.log(head + " -> send failed: connection closed")
            return None
        return self.await_reply(conn, op, head, record, timeout, mask, render)

    def await_reply(self, conn, op, head, record=True, timeout=REPLY_TIMEOUT, mask=(), render=None):
        notes = []
        while True:
            kind, payload = conn.read_frame(timeout)
            self._check_silent(kind == "timeout")
            if kind != "frame":
                if record:
                    self._flush_notes(conn, notes)
                    self.log(head + " -> " + self._noreply(kind, payload, timeout))
                return None
            r = R(payload)
            try:
                rxid, zxid, err = r.i32(), r.i64(), r.i32()
            except Short:
                if record:
                    self.log(head + " -> short frame %s" % payload.hex())
                return None
            if rxid == -1:
                try:
                    typ, state, path = r.i32(), r.i32(), r.ustr()
                except Short:
                    typ, state, path = -99, -99, "undecodable:" + payload.hex()
                notes.append((zxid, typ, state, path, err))
                continue
            break
        items, tail = [], ""
        if op == OP["createSession"] and len(payload) in (36, 37):
            # a ConnectResponse in place of a ReplyHeader
            r.p = 0
            proto, to, sid, pw = r.i32(), r.i32(), r.i64(), r.buf()
            ro = r.bln() if r.left() else None
            if record:
                self.log("%s -> connect-response len=%d proto=%d to=%d sid=%s pw=%s ro=%s" % (
                    head, len(payload), proto, to, self.n.session(sid, create=True), self.n.passwd(pw),
                    "-" if ro is None else int(ro)))
            return None
        if err == 0:
            try:
                items = decode_body(op, r)
            except Short:
                tail = " undecodable=%s" % payload[16:].hex()
                r.p = len(r.b)
        if r.left():
            tail += " body=%s" % r.take(r.left()).hex()
        if record:
            # name the write's zxid first: notifications it triggered refer to it
            if op in WRITE_OPS and err == 0 and multi_ok(items) and rxid != -2:
                z = self.n.anchor(zxid, int(head.split(" ", 1)[0]))
                conn.max_zxid = zxid if conn.max_zxid is None else max(conn.max_zxid, zxid)
            else:
                z = self.n.loose(zxid, conn)
            self._flush_notes(conn, notes)
            body = render(self.n, items) if render else " ".join(render_item(self.n, it, mask) for it in items)
            self.log("%s -> x=%d z=%s err=%d%s%s%s" % (
                head, rxid, z, err, (" " + ERRNAME[err]) if err in ERRNAME and err else "",
                (" " + body) if body else "", tail))
        return (rxid, zxid, err, items)

    def wait_close(self, conn, secs=CLOSE_WAIT):
        """Record whether the server closes conn within secs (frames read meanwhile too)."""
        self.step += 1
        head = "%d %s wait-eof(%gs)" % (self.step, conn.label, secs)
        if conn.closed and not conn.rbuf:
            self.log(head + " -> closed")
            return True
        deadline = time.monotonic() + secs
        extra = []
        while True:
            left = deadline - time.monotonic()
            kind, payload = conn.read_frame(max(left, 0.01))
            if kind == "frame":
                extra.append(payload[:32].hex())
                continue
            if kind == "timeout":
                self.log(head + " -> open" + (" frames=%s" % extra if extra else ""))
                return False
            self.log(head + " -> closed" + (" frames=%s" % extra if extra else "")
                     + (" trailing=%s" % payload.hex() if payload else ""))
            return True

    def expect_silence(self, conn, secs):
        """Record what arrives within secs (used where no reply is expected)."""
        self.step += 1
        head = "%d %s wait(%gs)" % (self.step, conn.label, secs)
        kind, payload = conn.read_frame(secs)
        if kind == "timeout":
            self.log(head + " -> nothing")
        elif kind == "frame":
            self.log(head + " -> frame %s" % payload[:32].hex())
        else:
            self.log(head + " -> " + self._noreply(kind, payload))

    def survives(self, old):
        """A new connection resuming old's session: same session id back?"""
        if not old.session:
            self.note("resume: no session to resume")
            return None
        c = self.open(session=old.session, passwd=old.passwd)
        self.ping(c)
        return c

    # -- operations --
    def ping(self, c, **kw):
        return self.request(c, OP["ping"], b"", "", xid=-2, **kw)

    def create(self, c, path, data=b"", flags=0, acl=OPEN_ACL, op=1, ttl=None, desc=None, **kw):
        d = desc or "%s flags=%d%s%s" % (path, flags, "" if data == b"" else " data=" + render_data(data),
                                         "" if ttl is None else " ttl=%d" % ttl)
        return self.request(c, op, create_body(path, data, acl, flags, ttl), d, **kw)

    def delete(self, c, path, version=-1, **kw):
        return self.request(c, OP["delete"], ustr(path) + i32(version), "%s v=%d" % (path, version), **kw)

    def exists(self, c, path, watch=False, **kw):
        return self.request(c, OP["exists"], ustr(path) + bln(watch),
                            "%r%s" % (path, " watch" if watch else ""), **kw)

    def get(self, c, path, watch=False, **kw):
        return self.request(c, OP["getData"], ustr(path) + bln(watch),
                            "%r%s" % (path, " watch" if watch else ""), **kw)

    def set(self, c, path, data, version=-1, **kw):
        return self.request(c, OP["setData"], ustr(path) + buf(data) + i32(version),
                            "%s %s v=%d" % (path, render_data(data), version), **kw)

    def children(self, c, path, watch=False, two=False, **kw):
        return self.request(c, OP["getChildren2" if two else "getChildren"], ustr(path) + bln(watch),
                            "%s%s" % (path, " watch" if watch else ""), **kw)

    def multi(self, c, ops, read=False, **kw):
        body = b""
        descs = []
        for typ, rec, d in ops:
            body += i32(typ) + bln(False) + i32(-1) + rec
            descs.append(d)
        body += i32(-1) + bln(True) + i32(-1)
        return self.request(c, OP["multiRead" if read else "multi"], body, "; ".join(descs), **kw)


CASES = []


def case(group):
    def deco(fn):
        CASES.append((group, fn.__name__[len("case_"):], fn))
        return fn
    return deco


# ============================================================ handshake ===


@case("handshake")
def case_hs_connect45(x):
    c = x.open()
    x.ping(c)


@case("handshake")
def case_hs_connect44(x):
    c = x.open(length=44)
    x.ping(c)


@case("handshake")
def case_hs_timeout_negotiation(x):
    for to in (1000, 4000, 30000, 40000, 10000000):
        c = x.open(timeout=to)
        x.ping(c)


@case("handshake")
def case_hs_reconnect_same_session(x):
    c1 = x.begin()
    x.create(c1, x.root + "/e", flags=1)
    c2 = x.open(session=c1.session, passwd=c1.passwd)
    x.wait_close(c1)  # the server drops the old connection of a resumed session
    x.exists(c2, x.root + "/e")
    x.ping(c2)


@case("handshake")
def case_hs_wrong_password(x):
    c1 = x.open()
    bad = bytes(b ^ 0x5A for b in (c1.passwd or b"\0" * 16))
    c2 = x.open(session=c1.session, passwd=bad)
    x.wait_close(c2)
    x.ping(c1)


@case("handshake")
def case_hs_unknown_session(x):
    c = x.open(session=0x0123456789ABCDEF, passwd=b"\x01" * 16)
    x.wait_close(c)


@case("handshake")
def case_hs_zxid_ahead(x):
    c = x.open(last_zxid=1 << 60)
    x.wait_close(c)


@case("handshake")
def case_ping(x):
    c = x.open()
    x.ping(c)
    x.ping(c)
    x.request(c, OP["ping"], b"", "xid=7", xid=7)


# ================================================================== ops ===


@case("ops")
def case_create_modes(x):
    c = x.begin()
    r = x.root
    x.create(c, r + "/p", b"data")
    x.create(c, r + "/pnull", None)
    x.create(c, r + "/e", b"x", flags=1)
    x.create(c, r + "/p", b"again")  # exists
    x.create(c, r + "/missing/child")  # parent missing
    x.create(c, r + "/e/child")  # child of an ephemeral
    made = [x.create(c, r + "/s-", flags=2), x.create(c, r + "/es-", flags=3)]
    x.create(c, r + "/c4", flags=4)  # container mode through plain create
    for p in [r + "/p", r + "/pnull", r + "/e"] + [m[3][0][1] for m in made if m and m[2] == 0]:
        x.get(c, p)
    x.children(c, r, two=True)


@case("ops")
def case_create2(x):
    c = x.begin()
    x.create(c, x.root + "/a", b"abc", op=15)
    x.create(c, x.root + "/s-", b"", flags=3, op=15)
    x.create(c, x.root + "/a", b"abc", op=15)
    x.exists(c, x.root + "/a")


@case("ops")
def case_create_container(x):
    c = x.begin()
    x.create(c, x.root + "/c", b"", flags=4, op=19)
    x.create(c, x.root + "/c0", b"", flags=0, op=19)  # createContainer with a non-container flag
    x.create(c, x.root + "/c/kid", op=1)
    x.exists(c, x.root + "/c")


@case("ops")
def case_create_ttl(x):
    c = x.begin()
    x.create(c, x.root + "/t", b"v", flags=5, op=21, ttl=100000)
    x.create(c, x.root + "/ts-", b"", flags=6, op=21, ttl=100000)
    x.create(c, x.root + "/t0", b"", flags=0, op=21, ttl=100000)  # not a TTL mode
    x.create(c, x.root + "/tz", b"", flags=5, op=21, ttl=0)  # ttl 0
    x.create(c, x.root + "/tbig", b"", flags=5, op=21, ttl=1 << 41)  # ttl too large
    x.create(c, x.root + "/t1", b"", flags=5, op=1)  # TTL mode through plain create
    x.create(c, x.root + "/t/kid", op=1)
    x.exists(c, x.root + "/t")


@case("ops")
def case_delete_versions(x):
    c = x.begin()
    r = x.root
    x.create(c, r + "/a")
    x.set(c, r + "/a", b"1")
    x.delete(c, r + "/a", version=0)
    x.delete(c, r + "/a", version=1)
    x.create(c, r + "/b")
    x.delete(c, r + "/b", version=-1)
    x.create(c, r + "/p")
    x.create(c, r + "/p/kid")
    x.delete(c, r + "/p")
    x.delete(c, r + "/missing")
    x.delete(c, r + "/missing", version=5)
    x.children(c, r, two=True)


@case("ops")
def case_exists(x):
    c = x.begin()
    x.create(c, x.root + "/a", b"12345")
    x.exists(c, x.root + "/a")
    x.exists(c, x.root + "/nope")
    x.exists(c, x.root + "/nope", watch=True)
    x.create(c, x.root + "/nope")
    x.exists(c, x.root + "/a", watch=True)
    x.delete(c, x.root + "/a")
    x.ping(c)


@case("ops")
def case_getdata_setdata(x):
    c = x.begin()
    p = x.root + "/a"
    x.create(c, p, b"one")
    x.get(c, p)
    x.set(c, p, b"two", version=0)
    x.set(c, p, b"three", version=0)
    x.set(c, p, b"three", version=1)
    x.set(c, p, b"", version=-1)
    x.set(c, p, None, version=-1)
    x.get(c, p)
    x.get(c, x.root + "/missing")
    x.set(c, x.root + "/missing", b"z")


@case("ops")
def case_getchildren(x):
    c = x.begin()
    r = x.root
    for n in ("b", "a", "c"):
        x.create(c, r + "/" + n)
    x.children(c, r)
    x.children(c, r, two=True)
    x.children(c, r + "/a")
    x.children(c, r + "/a", two=True)
    x.children(c, r + "/missing")
    x.children(c, r + "/missing", two=True)


@case("ops")
def case_acl(x):
    c = x.begin()
    p = x.root + "/a"
    x.create(c, p, b"d")
    x.request(c, OP["getACL"], ustr(p), p)
    x.request(c, OP["setACL"], ustr(p) + acl_vec([(1, "world", "anyone")]) + i32(0), p + " world:anyone:r v=0")
    x.request(c, OP["setACL"], ustr(p) + acl_vec(OPEN_ACL) + i32(0), p + " world:anyone:all v=0")
    x.request(c, OP["getACL"], ustr(p), p)
    x.get(c, p)
    x.set(c, p, b"w")
    x.create(c, p + "/kid")
    x.delete(c, p)  # DELETE on the parent (root of the case) is allowed
    dig = digest_id("rfuser", "rfpass")
    x.create(c, x.root + "/d", b"secret", acl=[(31, "digest", dig)])
    x.get(c, x.root + "/d")
    x.request(c, OP["getACL"], ustr(x.root + "/d"), x.root + "/d")
    x.request(c, OP["auth"], i32(0) + ustr("digest") + buf("rfuser:rfpass"), "digest rfuser", xid=-4)
    x.get(c, x.root + "/d")
    x.request(c, OP["getACL"], ustr(x.root + "/d"), x.root + "/d")
    x.request(c, OP["getACL"], ustr(x.root + "/missing"), x.root + "/missing")


@case("ops")
def case_sync(x):
    c = x.begin()
    x.request(c, OP["sync"], ustr(x.root), x.root)
    x.request(c, OP["sync"], ustr(x.root + "/missing"), x.root + "/missing")
    x.request(c, OP["sync"], ustr("/"), "/")


def m_create(path, data=b"", flags=0, op=1):
    return (op, create_body(path, data, OPEN_ACL, flags), "create %s" % path)


def m_delete(path, version=-1):
    return (2, ustr(path) + i32(version), "delete %s v=%d" % (path, version))


def m_set(path, data, version=-1):
    return (5, ustr(path) + buf(data) + i32(version), "setData %s v=%d" % (path, version))


def m_check(path, version):
    return (13, ustr(path) + i32(version), "check %s v=%d" % (path, version))


def m_get(path, op=4):
    return (op, ustr(path) + bln(False), "%s %s" % (OPNAME[op], path))


@case("ops")
def case_multi_ok(x):
    c = x.begin()
    r = x.root
    x.create(c, r + "/old", b"o")
    x.multi(c, [m_create(r + "/a", b"1"), m_create(r + "/b", b"", op=15), m_set(r + "/a", b"2", 0),
                m_check(r + "/a", 1), m_delete(r + "/old", 0), m_create(r + "/s-", flags=2)])
    x.children(c, r, two=True)
    x.exists(c, r + "/a")


@case("ops")
def case_multi_fail_middle(x):
    c = x.begin()
    r = x.root
    x.create(c, r + "/exists")
    x.multi(c, [m_create(r + "/a"), m_create(r + "/exists"), m_set(r + "/a", b"x")])
    x.exists(c, r + "/a")
    x.multi(c, [m_create(r + "/b"), m_delete(r + "/nonode"), m_create(r + "/c")])
    x.children(c, r, two=True)


@case("ops")
def case_multi_check_wrong_version(x):
    c = x.begin()
    r = x.root
    x.create(c, r + "/v")
    x.multi(c, [m_check(r + "/v", 3), m_create(r + "/a")])
    x.multi(c, [m_create(r + "/b"), m_check(r + "/v", 0), m_check(r + "/missing", 0)])
    x.multi(c, [])
    x.exists(c, r + "/a")


@case("ops")
def case_multiread(x):
    c = x.begin()
    r = x.root
    x.create(c, r + "/a", b"A")
    x.create(c, r + "/a/k")
    x.multi(c, [m_get(r + "/a"), m_get(r + "/a", 8), m_get(r + "/missing"), m_get(r + "/a/k", 8)],
            read=True)
    x.multi(c, [m_create(r + "/x")], read=True)  # a write inside multiRead


@case("ops")
def case_get_ephemerals(x):
    c1 = x.begin()
    r = x.root
    x.create(c1, r + "/e1", flags=1)
    x.create(c1, r + "/e2", flags=3)
    x.create(c1, r + "/p")
    c2 = x.open()
    x.create(c2, r + "/other", flags=1)
    x.request(c1, OP["getEphemerals"], ustr(r), r)
    x.request(c1, OP["getEphemerals"], ustr(r + "/e"), r + "/e")
    x.request(c1, OP["getEphemerals"], ustr("/"), "/")
    x.request(c1, OP["getEphemerals"], ustr(r + "/zzz"), r + "/zzz")
    x.request(c2, OP["getEphemerals"], ustr(r), r)


@case("ops")
def case_all_children_number(x):
    c = x.begin()
    r = x.root
    for p in ("/a", "/a/b", "/a/b/c", "/d"):
        x.create(c, r + p)
    x.request(c, OP["getAllChildrenNumber"], ustr(r), r)
    x.request(c, OP["getAllChildrenNumber"], ustr(r + "/a/b/c"), r + "/a/b/c")
    x.request(c, OP["getAllChildrenNumber"], ustr(r + "/missing"), r + "/missing")


@case("ops")
def case_whoami_auth(x):
    c = x.open()
    x.request(c, OP["whoAmI"], b"", "")
    x.request(c, OP["auth"], i32(0) + ustr("digest") + buf("rfuser:rfpass"), "digest rfuser", xid=-4)
    x.request(c, OP["whoAmI"], b"", "")


def sasl_token(token):
    return buf(token)


@case("ops")
def case_sasl_failure(x):
    # DIGEST-MD5: an empty first token gets the challenge; a response that does not verify is
    # answered AUTHFAILED, then the connection is closed; the session survives.
    c = x.begin()
    x.request(c, OP["sasl"], sasl_token(b""), "empty token")
    x.request(c, OP["sasl"], sasl_token(b'username="jaasuser",nonce="x",response="0"'), "bad response")
    x.wait_close(c)
    x.survives(c)


@case("ops")
def case_addwatch(x):
    c1 = x.begin()
    r = x.root
    c2 = x.open()
    x.create(c1, r + "/rec")
    x.create(c1, r + "/per")
    x.request(c1, OP["addWatch"], ustr(r + "/rec") + i32(1), r + "/rec recursive")
    x.request(c1, OP["addWatch"], ustr(r + "/per") + i32(0), r + "/per persistent")
    x.request(c1, OP["addWatch"], ustr(r + "/absent") + i32(0), r + "/absent persistent")
    x.create(c2, r + "/rec/a")
    x.set(c2, r + "/rec/a", b"1")
    x.create(c2, r + "/rec/a/b")
    x.delete(c2, r + "/rec/a/b")
    x.set(c2, r + "/per", b"1")
    x.set(c2, r + "/per", b"2")
    x.create(c2, r + "/per/k")
    x.create(c2, r + "/absent")
    x.ping(c1)
    x.request(c1, OP["addWatch"], ustr(r + "/per") + i32(7), r + "/per mode=7")


@case("ops")
def case_check_remove_watches(x):
    c1 = x.begin()
    r = x.root
    c2 = x.open()
    x.create(c1, r + "/a")
    x.get(c1, r + "/a", watch=True)
    x.children(c1, r + "/a", watch=True)
    for typ in (2, 1, 3):
        x.request(c1, OP["checkWatches"], ustr(r + "/a") + i32(typ), "%s/a type=%d" % (r, typ))
    x.request(c1, OP["checkWatches"], ustr(r + "/none") + i32(3), r + "/none type=3")
    x.request(c1, OP["removeWatches"], ustr(r + "/a") + i32(2), r + "/a type=2")
    x.request(c1, OP["checkWatches"], ustr(r + "/a") + i32(2), r + "/a type=2")
    x.request(c1, OP["removeWatches"], ustr(r + "/a") + i32(2), r + "/a type=2")
    x.set(c2, r + "/a", b"x")
    x.create(c2, r + "/a/k")
    x.ping(c1)
    x.request(c1, OP["removeWatches"], ustr(r + "/a") + i32(3), r + "/a type=3")


@case("ops")
def case_setwatches_reconnect(x):
    c1 = x.begin()
    r = x.root
    for p in ("/a", "/b", "/gone", "/kids"):
        x.create(c1, r + p)
    res = x.exists(c1, r + "/a")
    rel = res[1] if res else 0  # the header zxid of a read: what the client has seen
    c2 = x.open()
    x.set(c2, r + "/a", b"new")
    x.delete(c2, r + "/gone")
    x.create(c2, r + "/c")
    x.create(c2, r + "/kids/k")
    c3 = x.open(session=c1.session, passwd=c1.passwd)
    x.wait_close(c1, 0.5)
    body = i64(rel) + str_vec([r + "/a", r + "/b", r + "/gone"]) + \
        str_vec([r + "/c", r + "/d"]) + str_vec([r + "/kids", r + "/b"])
    x.request(c3, OP["setWatches"], body,
              "relZxid=<zxid of step 7's reply> data=a,b,gone exist=c,d child=kids,b", xid=-8)
    x.set(c2, r + "/b", b"later")
    x.create(c2, r + "/d")
    x.ping(c3)


@case("ops")
def case_close_session(x):
    c1 = x.begin()
    r = x.root
    c2 = x.open()
    x.create(c1, r + "/e", flags=1)
    x.create(c1, r + "/p")
    x.exists(c2, r + "/e", watch=True)
    x.request(c1, OP["closeSession"], b"", "")
    x.wait_close(c1)
    x.ping(c2)
    x.exists(c2, r + "/e")
    x.children(c2, r, two=True)
    c3 = x.open(session=c1.session, passwd=c1.passwd)
    x.wait_close(c3)


@case("ops")
def case_sequential_cversion(x):
    c = x.begin()
    r = x.root
    x.create(c, r + "/n-", flags=2)
    x.create(c, r + "/n-", flags=2)
    x.delete(c, r + "/n-0000000000")
    x.create(c, r + "/n-", flags=2)
    x.children(c, r, two=True)
    x.create(c, r + "/m", flags=0)
    x.create(c, r + "/n-", flags=3)
    x.children(c, r, two=True)


@case("ops")
def case_system_nodes(x):
    c = x.begin()
    x.exists(c, "/zookeeper")
    x.children(c, "/zookeeper", two=True)
    x.exists(c, "/zookeeper/quota")
    x.get(c, "/zookeeper/quota")
    x.exists(c, "/zookeeper/config", mask=("dl",))
    # the root: its child count and cversion depend on the earlier cases,
    # so only their changes are compared
    before = x.exists(c, "/", mask=("cv", "nc"))
    x.create(c, "/rf-sysroot-kid")
    after = x.exists(c, "/", mask=("cv", "nc"))
    x.delete(c, "/rf-sysroot-kid")
    after2 = x.exists(c, "/", mask=("cv", "nc"))
    if before and after and after2:
        s0, s1, s2 = before[3][0], after[3][0], after2[3][0]
        x.note("root deltas: cv %+d %+d, nc %+d %+d" % (
            s1[6] - s0[6], s2[6] - s1[6], s1[10] - s0[10], s2[10] - s1[10]))
    x.get(c, "/", mask=("cv", "nc"))
    x.delete(c, "/zookeeper")
    x.set(c, "/zookeeper", b"x")
    x.create(c, "/zookeeper/rfkid")


@case("ops")
def case_container_ttl_gc(x):
    c = x.begin()
    r = x.root
    x.create(c, r + "/cont", op=19, flags=4)
    x.create(c, r + "/never", op=19, flags=4)
    x.create(c, r + "/cont/kid")
    x.delete(c, r + "/cont/kid")
    x.create(c, r + "/ttl", op=21, flags=5, ttl=1)
    x.create(c, r + "/ttlkeep", op=21, flags=5, ttl=1)
    x.create(c, r + "/ttlkeep/kid")
    poll = x.open(record=False)  # its own connection: polls must not shift c1's xids
    deadline = time.monotonic() + 6.0
    gone = {}
    while time.monotonic() < deadline and len(gone) < 2:
        for p in ("/cont", "/ttl"):
            if p in gone:
                continue
            res = x.exists(poll, r + p, record=False)
            if res and res[2] == -101:
                gone[p] = True
        time.sleep(0.2)
    x.note("after polling up to 6s: container %s, ttl node %s" % (
        "deleted" if "/cont" in gone else "still there", "deleted" if "/ttl" in gone else "still there"))
    x.children(c, r)


# ============================================================== watches ===


@case("watches")
def case_watch_data_one_shot(x):
    c1 = x.begin()
    c2 = x.open()
    p = x.root + "/a"
    x.create(c1, p, b"0")
    x.get(c1, p, watch=True)
    x.set(c2, p, b"1")
    x.set(c2, p, b"2")
    x.get(c1, p)
    x.set(c2, p, b"3")
    x.ping(c1)


@case("watches")
def case_watch_delete(x):
    c1 = x.begin()
    c2 = x.open()
    p = x.root + "/a"
    x.create(c1, p, b"0")
    x.get(c1, p, watch=True)
    x.exists(c1, p, watch=True)
    x.children(c1, p, watch=True)
    x.children(c1, x.root, watch=True)
    x.delete(c2, p)
    x.ping(c1)


@case("watches")
def case_watch_before_read(x):
    c1 = x.begin()
    c2 = x.open()
    p = x.root + "/a"
    x.create(c1, p, b"0")
    x.exists(c1, p, watch=True)
    x.children(c1, x.root, watch=True)
    x.set(c2, p, b"changed")
    x.create(c2, x.root + "/b")
    x.get(c1, p)
    x.children(c1, x.root)


@case("watches")
def case_watch_exists_create(x):
    c1 = x.begin()
    c2 = x.open()
    p = x.root + "/later"
    x.exists(c1, p, watch=True)
    x.get(c1, x.root + "/other", watch=True)  # NONODE: getData leaves no watch
    x.create(c2, p, b"x")
    x.create(c2, x.root + "/other", b"x")
    x.ping(c1)


# ============================================================ bad input ===


@case("bad")
def case_bad_len_negative(x):
    c = x.begin()
    x.request(c, 0, b"", "frame length -1", raw=i32(-1) + b"\0" * 8, opname="raw")
    x.wait_close(c)
    x.survives(c)


@case("bad")
def case_bad_len_too_large(x):
    c = x.begin()
    x.request(c, 0, b"", "frame length 0x100000", raw=i32(0x100000) + i32(99) + i32(4) + b"\0" * 8,
              opname="raw")
    x.wait_close(c)
    x.survives(c)


@case("bad")
def case_bad_len_max(x):
    # exactly jute.maxbuffer (0xfffff): a legal length; the body is a create whose data fills it
    c = x.begin()
    path = x.root + "/big"
    head = i32(c.next_xid()) + i32(1) + ustr(path)
    tail = acl_vec(OPEN_ACL) + i32(0)
    data_len = 0xFFFFF - len(head) - 4 - len(tail)
    payload = head + buf(b"z" * data_len) + tail
    x.request(c, 1, b"", "create %s data=%d bytes, frame length 0x%x" % (path, data_len, len(payload)),
              raw=frame(payload), opname="create")
    x.wait_close(c, 0.5)
    x.ping(c)


@case("bad")
def case_bad_frame_cut_short(x):
    c = x.begin()
    x.create(c, x.root + "/a", b"v")
    full = frame(i32(c.next_xid()) + i32(OP["getData"]) + ustr(x.root + "/a") + bln(False))
    x.note("c1 send %d of %d bytes of a getData frame" % (len(full) - 5, len(full)))
    c.send(full[:-5])
    x.expect_silence(c, 1.0)
    x.step += 1
    c.send(full[-5:])
    x.await_reply(c, OP["getData"], "%d c1 rest(5 bytes)" % x.step)
    x.ping(c)


@case("bad")
def case_bad_undecodable_read(x):
    c = x.begin()
    # getData / exists: the path string claims 100 bytes, only 3 follow
    for op in (OP["getData"], OP["exists"], OP["getChildren"]):
        if c.closed:
            c = x.open()
        x.request(c, op, i32(100) + b"/ab", "path len 100, 3 bytes")
        x.wait_close(c, 0.5)
        x.ping(c)


def _bad_opcode(x, op, desc, wait=CLOSE_WAIT):
    c = x.begin()
    x.request(c, op, ustr(x.root) + bln(False), desc)
    x.wait_close(c, wait)
    x.survives(c)


@case("bad")
def case_bad_opcode_999(x):
    _bad_opcode(x, 999, "unknown opcode 999")


@case("bad")
def case_bad_check_standalone(x):
    c = x.begin()
    x.request(c, OP["check"], ustr(x.root) + i32(0), x.root + " v=0")
    x.wait_close(c)
    x.survives(c)


@case("bad")
def case_bad_delete_container(x):
    c = x.begin()
    x.create(c, x.root + "/c", op=19, flags=4)
    x.request(c, OP["deleteContainer"], ustr(x.root + "/c"), x.root + "/c")
    x.wait_close(c)
    x.survives(c)
    c2 = x.open()
    x.exists(c2, x.root + "/c")


@case("bad")
def case_bad_opcode_0(x):
    _bad_opcode(x, 0, "opcode 0")


@case("bad")
def case_bad_opcode_m1(x):
    _bad_opcode(x, -1, "opcode -1")


@case("bad")
def case_bad_opcode_m10(x):
    # Apache ZooKeeper 3.9.5 runs this as a createSession whose timeout is the
    # first body int (here the path length, in ms), replies with a
    # ConnectResponse and expires the session at the next tick (<= 2 s).
    _bad_opcode(x, -10, "opcode -10", wait=3.5)


def _each_on_open_conn(x, c, fn, items):
    for item in items:
        if c.closed:
            c = x.open()
        fn(c, item)
    x.ping(c)
    return c


@case("bad")
def case_bad_create_paths(x):
    c = x.begin()
    x.create(c, x.root + "/a")
    paths = ["rel", "/a//b", "/a/", "/zz/..", "/a\0b", "/", "", x.root + "/a//b", x.root + "/a/",
             x.root + "/.", x.root + "/a/..", x.root + "/x\x01y", x.root + "/x\u00e9y"]
    _each_on_open_conn(x, c, lambda cc, p: x.create(cc, p, desc="%r" % p), paths)


@case("bad")
def case_bad_read_paths(x):
    c = x.begin()
    x.create(c, x.root + "/a")
    paths = ["rel", "/a//b", "/a/", "/zz/..", "/a\0b", "", x.root + "/a/", x.root + "/./a"]

    def both(cc, p):
        # "" may resolve to the root, whose child count depends on earlier cases
        x.get(cc, p, mask=("cv", "nc"))
        x.exists(cc, p, mask=("cv", "nc"))
    _each_on_open_conn(x, c, both, paths)


@case("bad")
def case_bad_create_flags(x):
    c = x.begin()
    _each_on_open_conn(x, c, lambda cc, f: x.create(cc, "%s/f%d" % (x.root, f), flags=f),
                       [7, -1, 8, 5, 6])


@case("bad")
def case_bad_create_acl(x):
    c = x.begin()
    r = x.root
    items = [("empty", []), ("null", None), ("bad-scheme", [(31, "nosuch", "x")]),
             ("bad-perms", [(0, "world", "anyone")]), ("auth-unauthed", [(31, "auth", "")])]
    _each_on_open_conn(x, c, lambda cc, it: x.create(cc, r + "/" + it[0], acl=it[1],
                                                     desc="%s/%s acl=%s" % (r, it[0], it[0])), items)
    c = x.conns[-1]
    if c.closed:
        c = x.open()
    x.request(c, OP["setACL"], ustr(r) + acl_vec([]) + i32(-1), r + " acl=[] v=-1")


@case("bad")
def case_bad_null_path(x):
    c = x.begin()
    _each_on_open_conn(x, c, lambda cc, op: x.request(cc, op, i32(-1) + bln(False), "path=null"),
                       [OP["getData"], OP["exists"]])


@case("bad")
def case_bad_short_header(x):
    c = x.begin()
    x.request(c, 0, b"", "4-byte frame: xid only", raw=frame(i32(c.next_xid())), opname="raw")
    x.wait_close(c)
    x.survives(c)


@case("bad")
def case_fourlw_after_handshake(x):
    c = x.begin()
    x.request(c, 0, b"", "'ruok' after the handshake", raw=b"ruok", opname="raw", timeout=1.0)
    x.wait_close(c)
    x.survives(c)


@case("bad")
def case_fourlw_before_handshake(x):
    for word in (b"ruok", b"abcd"):
        conn = Conn(x, "w")
        x.conns.append(conn)
        conn.send(word)
        data, closed = conn.read_raw_until_eof(CLOSE_WAIT)
        x.note("raw %r before handshake -> %s%s" % (word.decode(), render_data(data),
                                                    " then closed" if closed else " (still open)"))


# Last on purpose: on Apache ZooKeeper 3.9.5 (one-member ensemble) an
# undecodable *write* stops the whole request pipeline (the error txn reuses
# the previous zxid, the txn log refuses it, nothing is committed after it).


@case("bad")
def case_bad_undecodable_write(x):
    c = x.begin()
    # create: the path string claims 100 bytes, only 3 follow
    x.request(c, OP["create"], i32(100) + b"/ab", "path len 100, 3 bytes", timeout=2.0)
    x.ping(c, timeout=1.0)
    c2 = x.open(timeout_s=2.0)
    x.ping(c2, timeout=1.0)


# ------------------------------------------------------------------ run ----


def run_case(port, group, name, fn):
    x = Ctx(port, name)
    t = time.monotonic()
    try:
        fn(x)
    except Aborted as e:
        x.log("ABORTED: %s" % e)
    except Exception as e:  # recorded as part of the outcome
        x.log("EXCEPTION %s: %s" % (type(e).__name__, e))
        traceback.print_exc(file=sys.stderr)
    finally:
        try:
            x.finish()
        except Exception:
            pass
    return {"group": group, "name": name, "outcome": x.lines,
            "duration_s": round(time.monotonic() - t, 2)}


# Groups that need a server configured for them; run only when asked for (compat.py's
# rawauth suite starts its servers with the zoo.cfg keys in SPECIAL_GROUPS[group]).
SPECIAL_GROUPS = {
    "enforce_auth": "enforce.auth.enabled=true\nenforce.auth.schemes=digest,sasl",
}


def run(port, out_path=None, only=None, groups=None):
    """Runs the cases of `groups` (default: every group not in SPECIAL_GROUPS)."""
    t0 = time.monotonic()
    cases = []
    deselected = read_deselected()
    for group, name, fn in CASES:
        if (only and name not in only) or name in deselected:
            continue
        if (group not in groups) if groups else (group in SPECIAL_GROUPS):
            continue
        cases.append(run_case(port, group, name, fn))
    res = {"cases": cases, "duration_s": round(time.monotonic() - t0, 1),
           "deselected": deselected}
    if out_path:
        Path(out_path).write_text(json.dumps(res, indent=1) + "\n")
    return res


def strip_timing(res):
    return {"cases": [{k: c[k] for k in ("group", "name", "outcome")} for c in res["cases"]]}


def write_expected(res, path=EXPECTED):
    """The checked-in reference: Apache ZooKeeper 3.9.5's outcomes, without timings."""
    doc = {"generated_from": "Apache ZooKeeper 3.9.5 (compat-tests/lib/compat.py --update-rawframes-expected)"}
    doc.update(strip_timing(res))
    Path(path).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def outcome_text(res):
    """All outcomes as plain text (for diffs)."""
    out = []
    for c in res["cases"]:
        out.append("== [%s] %s" % (c["group"], c["name"]))
        out.extend(c["outcome"])
    return "\n".join(out) + "\n"


def compare(reference, actual):
    """Per-case comparison; cases follow CASES order."""
    ref = {c["name"]: c for c in reference["cases"]}
    act = {c["name"]: c for c in actual["cases"]}
    blocks, cases = {}, []
    for group, name, _ in CASES:
        if name not in act:
            continue
        e, a = ref.get(name), act[name]
        if e is None:
            status, why = "failed", "no reference outcome for this case (regenerate expected.json?)"
        elif e["outcome"] != a["outcome"]:
            status, why = "failed", "outcome differs"
        else:
            status, why = "passed", ""
        b = blocks.setdefault(group, {"passed": 0, "failed": 0, "skipped": 0})
        b[status] += 1
        entry = {"group": group, "name": name, "status": status}
        if status == "failed":
            entry["reason"] = why
            entry["expected"] = e["outcome"] if e else None
            entry["actual"] = a["outcome"]
            if e:
                entry["diff"] = diff_lines(e["outcome"], a["outcome"])
        cases.append(entry)
    totals = {k: sum(b[k] for b in blocks.values()) for k in ("passed", "failed", "skipped")}
    return {"totals": totals, "blocks": blocks, "cases": cases}


def diff_lines(exp, act):
    import difflib
    return [l for l in difflib.unified_diff(exp, act, "reference", "actual", n=1, lineterm="")][2:]


def format_blocks(result, verbose=True):
    lines = []
    width = max([len(b) for b in result["blocks"]] + [5])
    for name, b in result["blocks"].items():
        lines.append("  %-*s %3d passed, %d failed" % (width, name, b["passed"], b["failed"]))
    for c in result["cases"]:
        if c["status"] == "failed":
            lines.append("  FAILED [%s] %s: %s" % (c["group"], c["name"], c["reason"]))
            if verbose:
                for d in c.get("diff", []):
                    lines.append("      " + d)
    t = result["totals"]
    lines.append("  total: %d passed, %d failed" % (t["passed"], t["failed"]))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("-o", "--output", required=True)
    r.add_argument("--only", default="", help="comma list of case names")
    c = sub.add_parser("compare")
    c.add_argument("expected")
    c.add_argument("actual")
    c.add_argument("--json")
    sub.add_parser("list")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        res = run(args.port, args.output, [s for s in args.only.split(",") if s] or None)
        print("ran %d cases in %.1fs -> %s" % (len(res["cases"]), res["duration_s"], args.output))
        return 0
    if args.cmd == "compare":
        res = compare(json.loads(Path(args.expected).read_text()), json.loads(Path(args.actual).read_text()))
        print(format_blocks(res))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
        return 0 if res["totals"]["failed"] == 0 else 1
    if args.cmd == "list":
        for group, name, _ in CASES:
            print("%-10s %s" % (group, name))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())


# ====================================================== enforce_auth ===
# Servers started with enforce.auth.enabled=true, enforce.auth.schemes=digest,sasl.


def auth_digest(x, c):
    x.request(c, OP["auth"], i32(0) + ustr("digest") + buf("rfuser:rfpass"), "digest rfuser", xid=-4)


@case("enforce_auth")
def case_enforce_unauthenticated_read(x):
    c = x.open()
    x.request(c, OP["getData"], ustr("/") + bln(False), "/")
    x.wait_close(c)
    c2 = x.survives(c)
    x.wait_close(c2)


@case("enforce_auth")
def case_enforce_unauthenticated_ops(x):
    for op, body in [("ping", b""), ("whoAmI", b""), ("create", create_body("/rf-enforce")),
                     ("closeSession", b""), ("op77", b"")]:
        c = x.open()
        if op == "ping":
            x.request(c, OP["ping"], body, "", xid=-2)
        elif op == "op77":
            x.request(c, 77, body, "unknown opcode")
        else:
            x.request(c, OP[op], body, "")
        x.wait_close(c)


@case("enforce_auth")
def case_enforce_digest_then_ops(x):
    c = x.open()
    auth_digest(x, c)
    x.request(c, OP["whoAmI"], b"", "")
    x.create(c, x.root)
    x.get(c, x.root)
    x.delete(c, x.root)
    x.ping(c)


@case("enforce_auth")
def case_enforce_sasl_failure(x):
    # With sasl among the enforced schemes, a failed SASL step is SESSIONCLOSEDREQUIRESASLAUTH.
    c = x.open()
    x.request(c, OP["sasl"], sasl_token(b""), "empty token")
    x.request(c, OP["sasl"], sasl_token(b'username="jaasuser",nonce="x",response="0"'), "bad response")
    x.wait_close(c)
