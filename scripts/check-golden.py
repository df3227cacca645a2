#!/usr/bin/env python3
"""Sanity checks for the golden jute vectors in jute-schemas/golden/.

Usage: scripts/check-golden.py [GOLDEN_DIR]   (default: jute-schemas/golden next to this script)

For every JSON file it checks the file shape (keys, key order, lowercase hex, trailing
newline), then re-encodes `fields` with an independent, table-driven jute encoder written
here and requires the bytes to equal `hex`, and decodes `hex` back (strictly) and requires
the result to equal `fields`. Fixed-size records are also checked against their known sizes.
Negative vectors must be rejected by the strict decoder.

Strings are encoded the way Java's BinaryOutputArchive does it: every UTF-16 code unit is
encoded on its own, so a supplementary character becomes a CESU-8 surrogate pair (6 bytes).
"""

import json
import struct
import sys
from pathlib import Path

# Field tables for the jute records of ZooKeeper 3.9.5, in declaration order.
# Types: int, long, byte, bool, ustring, buffer, [T] = vector of T, or a record name.
SCHEMA = {
    # org.apache.zookeeper.data
    "Id": "scheme:ustring id:ustring",
    "ACL": "perms:int id:Id",
    "Stat": "czxid:long mzxid:long ctime:long mtime:long version:int cversion:int aversion:int "
            "ephemeralOwner:long dataLength:int numChildren:int pzxid:long",
    "StatPersisted": "czxid:long mzxid:long ctime:long mtime:long version:int cversion:int "
                     "aversion:int ephemeralOwner:long pzxid:long",
    "ClientInfo": "authScheme:ustring user:ustring",
    # org.apache.zookeeper.proto
    "ConnectRequest": "protocolVersion:int lastZxidSeen:long timeOut:int sessionId:long passwd:buffer "
                      "readOnly:bool",
    "ConnectResponse": "protocolVersion:int timeOut:int sessionId:long passwd:buffer readOnly:bool",
    "SetWatches": "relativeZxid:long dataWatches:[ustring] existWatches:[ustring] childWatches:[ustring]",
    "SetWatches2": "relativeZxid:long dataWatches:[ustring] existWatches:[ustring] childWatches:[ustring] "
                   "persistentWatches:[ustring] persistentRecursiveWatches:[ustring]",
    "RequestHeader": "xid:int type:int",
    "MultiHeader": "type:int done:bool err:int",
    "AuthPacket": "type:int scheme:ustring auth:buffer",
    "ReplyHeader": "xid:int zxid:long err:int",
    "GetDataRequest": "path:ustring watch:bool",
    "SetDataRequest": "path:ustring data:buffer version:int",
    "ReconfigRequest": "joiningServers:ustring leavingServers:ustring newMembers:ustring curConfigId:long",
    "SetDataResponse": "stat:Stat",
    "GetSASLRequest": "token:buffer",
    "SetSASLRequest": "token:buffer",
    "SetSASLResponse": "token:buffer",
    "CreateRequest": "path:ustring data:buffer acl:[ACL] flags:int",
    "CreateTTLRequest": "path:ustring data:buffer acl:[ACL] flags:int ttl:long",
    "DeleteRequest": "path:ustring version:int",
    "GetChildrenRequest": "path:ustring watch:bool",
    "GetAllChildrenNumberRequest": "path:ustring",
    "GetChildren2Request": "path:ustring watch:bool",
    "CheckVersionRequest": "path:ustring version:int",
    "GetMaxChildrenRequest": "path:ustring",
    "GetMaxChildrenResponse": "max:int",
    "SetMaxChildrenRequest": "path:ustring max:int",
    "SyncRequest": "path:ustring",
    "SyncResponse": "path:ustring",
    "GetACLRequest": "path:ustring",
    "SetACLRequest": "path:ustring acl:[ACL] version:int",
    "SetACLResponse": "stat:Stat",
    "AddWatchRequest": "path:ustring mode:int",
    "WatcherEvent": "type:int state:int path:ustring",
    "ErrorResponse": "err:int",
    "CreateResponse": "path:ustring",
    "Create2Response": "path:ustring stat:Stat",
    "ExistsRequest": "path:ustring watch:bool",
    "ExistsResponse": "stat:Stat",
    "GetDataResponse": "data:buffer stat:Stat",
    "GetChildrenResponse": "children:[ustring]",
    "GetAllChildrenNumberResponse": "totalNumber:int",
    "GetChildren2Response": "children:[ustring] stat:Stat",
    "GetACLResponse": "acl:[ACL] stat:Stat",
    "CheckWatchesRequest": "path:ustring type:int",
    "RemoveWatchesRequest": "path:ustring type:int",
    "GetEphemeralsRequest": "prefixPath:ustring",
    "GetEphemeralsResponse": "ephemerals:[ustring]",
    "WhoAmIResponse": "clientInfo:[ClientInfo]",
    # org.apache.zookeeper.server.quorum / .persistence
    "LearnerInfo": "serverid:long protocolVersion:int configVersion:long",
    "QuorumPacket": "type:int zxid:long data:buffer authinfo:[Id]",
    "QuorumAuthPacket": "magic:long status:int token:buffer",
    "FileHeader": "magic:int version:int dbid:long",
    # org.apache.zookeeper.txn
    "TxnDigest": "version:int treeDigest:long",
    "TxnHeader": "clientId:long cxid:int zxid:long time:long type:int",
    "CreateTxnV0": "path:ustring data:buffer acl:[ACL] ephemeral:bool",
    "CreateTxn": "path:ustring data:buffer acl:[ACL] ephemeral:bool parentCVersion:int",
    "CreateTTLTxn": "path:ustring data:buffer acl:[ACL] parentCVersion:int ttl:long",
    "CreateContainerTxn": "path:ustring data:buffer acl:[ACL] parentCVersion:int",
    "DeleteTxn": "path:ustring",
    "SetDataTxn": "path:ustring data:buffer version:int",
    "CheckVersionTxn": "path:ustring version:int",
    "SetACLTxn": "path:ustring acl:[ACL] version:int",
    "SetMaxChildrenTxn": "path:ustring max:int",
    "CreateSessionTxn": "timeOut:int",
    "CloseSessionTxn": "paths2Delete:[ustring]",
    "ErrorTxn": "err:int",
    "Txn": "type:int data:buffer",
    "MultiTxn": "txns:[Txn]",
}
FIELDS = {name: [tuple(f.split(":")) for f in spec.split()] for name, spec in SCHEMA.items()}

FIXED_SIZES = {"Stat": 68, "StatPersisted": 60, "ReplyHeader": 16, "RequestHeader": 8,
               "MultiHeader": 9, "TxnHeader": 32, "TxnDigest": 12, "FileHeader": 16}

TERMINATOR = bytes.fromhex("ffffffff01ffffffff")  # MultiHeader{type=-1, done=true, err=-1}

INT_RANGE = {"byte": (-(1 << 7), 1 << 7), "int": (-(1 << 31), 1 << 31), "long": (-(1 << 63), 1 << 63)}


class DecodeError(Exception):
    pass


def java_utf8(s):
    """Java BinaryOutputArchive string bytes: each UTF-16 code unit encoded separately."""
    out = bytearray()
    for ch in s:
        cp = ord(ch)
        if cp > 0xFFFF:
            cp -= 0x10000
            for unit in (0xD800 | (cp >> 10), 0xDC00 | (cp & 0x3FF)):
                out += chr(unit).encode("utf-8", "surrogatepass")
        else:
            out += ch.encode("utf-8", "surrogatepass")
    return bytes(out)


def from_java_utf8(b):
    """Inverse of java_utf8 (accepts 4-byte UTF-8 too); joins surrogate pairs."""
    try:
        s = b.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as e:
        raise DecodeError("invalid UTF-8/CESU-8 string: %s" % e)
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def encode(t, v, out):
    if t in INT_RANGE:
        if isinstance(v, bool) or not isinstance(v, int):
            raise AssertionError("expected integer for %s, got %r" % (t, v))
        lo, hi = INT_RANGE[t]
        assert lo <= v < hi, "%s out of range: %d" % (t, v)
        out += struct.pack({"byte": ">b", "int": ">i", "long": ">q"}[t], v)
    elif t == "bool":
        assert isinstance(v, bool), "expected bool, got %r" % (v,)
        out.append(1 if v else 0)
    elif t == "ustring":
        if v is None:
            out += struct.pack(">i", -1)
        else:
            b = java_utf8(v)
            out += struct.pack(">i", len(b)) + b
    elif t == "buffer":
        if v is None:
            out += struct.pack(">i", -1)
        else:
            assert v == v.lower(), "buffer hex must be lowercase"
            b = bytes.fromhex(v)
            out += struct.pack(">i", len(b)) + b
    elif t.startswith("["):
        if v is None:
            out += struct.pack(">i", -1)
        else:
            out += struct.pack(">i", len(v))
            for e in v:
                encode(t[1:-1], e, out)
    else:
        encode_record(t, v, out)


def encode_record(name, fields, out, allow_prefix=False):
    spec = FIELDS[name]
    names = [n for n, _ in spec]
    keys = list(fields.keys())
    if allow_prefix:
        assert keys == names[:len(keys)], "%s: keys %s are not a prefix of %s" % (name, keys, names)
    else:
        assert keys == names, "%s: keys %s != schema %s" % (name, keys, names)
    for n, t in spec[:len(keys)]:
        encode(t, fields[n], out)


class Reader:
    def __init__(self, b):
        self.b = b
        self.pos = 0

    def take(self, n):
        if n > len(self.b) - self.pos:
            raise DecodeError("need %d bytes at offset %d, %d left" % (n, self.pos, len(self.b) - self.pos))
        r = self.b[self.pos:self.pos + n]
        self.pos += n
        return r

    def length(self, what):
        n = struct.unpack(">i", self.take(4))[0]
        if n < -1:
            raise DecodeError("negative %s length %d" % (what, n))
        if n > len(self.b) - self.pos and what != "vector":
            raise DecodeError("%s length %d exceeds remaining %d" % (what, n, len(self.b) - self.pos))
        return n


def decode(t, r):
    if t == "byte":
        return struct.unpack(">b", r.take(1))[0]
    if t == "int":
        return struct.unpack(">i", r.take(4))[0]
    if t == "long":
        return struct.unpack(">q", r.take(8))[0]
    if t == "bool":
        b = r.take(1)[0]
        if b > 1:
            raise DecodeError("bool byte %d" % b)
        return b == 1
    if t == "ustring":
        n = r.length("ustring")
        return None if n == -1 else from_java_utf8(r.take(n))
    if t == "buffer":
        n = r.length("buffer")
        return None if n == -1 else r.take(n).hex()
    if t.startswith("["):
        n = r.length("vector")
        if n == -1:
            return None
        # every element is at least one byte: a count beyond the remaining bytes is bogus
        if n > len(r.b) - r.pos:
            raise DecodeError("vector count %d exceeds remaining %d bytes" % (n, len(r.b) - r.pos))
        return [decode(t[1:-1], r) for _ in range(n)]
    return decode_record(t, r)


def decode_record(name, r, limit=None):
    out = {}
    for n, t in FIELDS[name][:limit]:
        out[n] = decode(t, r)
    return out


def decode_all(name, b, limit=None):
    r = Reader(b)
    v = decode_record(name, r, limit)
    if r.pos != len(b):
        raise DecodeError("%d trailing bytes" % (len(b) - r.pos))
    return v


def check_multi(doc, b):
    out = bytearray()
    r = Reader(b)
    for op in doc["fields"]["ops"]:
        assert list(op.keys()) == ["type", "done", "err", "body", "bodyRecord"], op.keys()
        assert op["done"] is False
        encode_record("MultiHeader", {"type": op["type"], "done": op["done"], "err": op["err"]}, out)
        hdr = decode_record("MultiHeader", r)
        assert hdr == {"type": op["type"], "done": False, "err": op["err"]}, hdr
        if op["bodyRecord"] is None:
            assert op["body"] is None
        else:
            encode_record(op["bodyRecord"], op["body"], out)
            assert decode_record(op["bodyRecord"], r) == op["body"]
    out += TERMINATOR
    assert bytes(out) == b, "multi re-encoding differs"
    assert decode_record("MultiHeader", r) == {"type": -1, "done": True, "err": -1}
    assert r.pos == len(b), "trailing bytes after multi terminator"


def check_file(path, root):
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), "no trailing newline"
    doc = json.loads(raw.decode("utf-8"))
    rel = path.relative_to(root)
    group = rel.parts[0]
    assert doc["case"] == path.stem or (group == "negative" and path.stem == doc["record"] + "-" + doc["case"]), \
        "case name does not match file name"
    hx = doc["hex"]
    assert hx == hx.lower() and len(hx) % 2 == 0, "hex must be lowercase, even length"
    b = bytes.fromhex(hx)
    record = doc["record"]

    if group == "negative":
        assert list(doc.keys())[:6] == ["module", "record", "case", "hex", "expect", "why"], list(doc.keys())
        assert doc["expect"] in ("error", "ok")
        assert doc["javaDecode"].startswith("ok") == (doc["expect"] == "ok"), doc["javaDecode"]
        if doc["expect"] == "ok":
            # Java accepts these bytes (e.g. a vector count below -1 reads as empty); the Rust
            # tests check that our decoder does the same. This strict checker has no opinion.
            return "negative"
        try:
            decode_all(record, b)
        except DecodeError:
            return "negative"
        raise AssertionError("strict decoder accepted a negative vector")

    assert list(doc.keys()) == ["module", "record", "case", "hex", "fields"], list(doc.keys())
    if group == "multi":
        assert doc["module"] == "org.apache.zookeeper"
        check_multi(doc, b)
        return "multi"

    if group == "handshake":
        fields = doc["fields"]
        expected_len = {"connect-request-44": 44, "connect-request-45": 45,
                        "connect-response-36": 36, "connect-response-37": 37}[doc["case"]]
        assert len(b) == expected_len, "%s is %d bytes" % (doc["case"], len(b))
        assert ("readOnly" in fields) == (expected_len in (45, 37))
    else:
        assert group == record, "directory %s holds record %s" % (group, record)
        fields = doc["fields"]

    out = bytearray()
    encode_record(record, fields, out, allow_prefix=(group == "handshake"))
    assert bytes(out) == b, "re-encoded bytes differ:\n  got  %s\n  want %s" % (out.hex(), hx)
    assert decode_all(record, b, limit=len(fields)) == fields, "decoded fields differ"

    if record in FIXED_SIZES:
        assert len(b) == FIXED_SIZES[record], "%s must be %d bytes" % (record, FIXED_SIZES[record])
    passwd = fields.get("passwd")
    if record == "ConnectRequest" and passwd is not None and len(passwd) == 32 and "readOnly" in fields:
        assert len(b) == 45, "ConnectRequest with 16-byte passwd must be 45 bytes"
    if record == "ConnectResponse" and passwd is not None and len(passwd) == 32 and "readOnly" in fields:
        assert len(b) == 37, "ConnectResponse with 16-byte passwd must be 37 bytes"
    if group == "ConnectResponse" and doc["case"] == "basic":
        assert len(b) == 37
    if doc["case"] == "emoji-path" and record == "GetDataRequest":
        # U+1F600 as Java writes it: CESU-8 surrogate pair, not 4-byte UTF-8 (f09f9880)
        assert "eda0bdedb880" in hx and "f09f9880" not in hx
    return "positive"


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "jute-schemas" / "golden"
    files = sorted(root.rglob("*.json"))
    counts = {}
    failures = 0
    file_failures = 0
    for p in files:
        try:
            kind = check_file(p, root)
            counts[kind] = counts.get(kind, 0) + 1
        except Exception as e:  # report every bad file, not just the first
            failures += 1
            file_failures += 1
            print("FAIL %s: %s: %s" % (p.relative_to(root), type(e).__name__, e), file=sys.stderr)
    covered = {p.parent.name for p in files} & set(SCHEMA)
    missing = sorted(set(SCHEMA) - covered)
    if missing:
        failures += 1
        print("FAIL records without a directory: %s" % missing, file=sys.stderr)
    if not files:
        failures += 1
        print("FAIL no JSON files under %s" % root, file=sys.stderr)
    summary = ", ".join("%d %s" % (n, k) for k, n in sorted(counts.items()))
    print("check-golden: %d files (%s)" % (len(files), summary))
    print("%d passed, %d failed" % (len(files) - file_failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
