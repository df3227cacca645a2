package ferrokeeper.golden;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.Enumeration;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

import org.apache.jute.BinaryInputArchive;
import org.apache.jute.BinaryOutputArchive;
import org.apache.jute.OutputArchive;
import org.apache.jute.Record;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.MultiOperationRecord;
import org.apache.zookeeper.MultiResponse;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.compat.ProtocolManager;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.data.StatPersisted;
import org.apache.zookeeper.proto.AddWatchRequest;
import org.apache.zookeeper.proto.AuthPacket;
import org.apache.zookeeper.proto.CheckVersionRequest;
import org.apache.zookeeper.proto.CheckWatchesRequest;
import org.apache.zookeeper.proto.ConnectRequest;
import org.apache.zookeeper.proto.ConnectResponse;
import org.apache.zookeeper.proto.Create2Response;
import org.apache.zookeeper.proto.CreateRequest;
import org.apache.zookeeper.proto.CreateResponse;
import org.apache.zookeeper.proto.CreateTTLRequest;
import org.apache.zookeeper.proto.DeleteRequest;
import org.apache.zookeeper.proto.ErrorResponse;
import org.apache.zookeeper.proto.ExistsRequest;
import org.apache.zookeeper.proto.ExistsResponse;
import org.apache.zookeeper.proto.GetACLRequest;
import org.apache.zookeeper.proto.GetACLResponse;
import org.apache.zookeeper.proto.GetAllChildrenNumberRequest;
import org.apache.zookeeper.proto.GetAllChildrenNumberResponse;
import org.apache.zookeeper.proto.GetChildren2Request;
import org.apache.zookeeper.proto.GetChildren2Response;
import org.apache.zookeeper.proto.GetChildrenRequest;
import org.apache.zookeeper.proto.GetChildrenResponse;
import org.apache.zookeeper.proto.GetDataRequest;
import org.apache.zookeeper.proto.GetDataResponse;
import org.apache.zookeeper.proto.GetEphemeralsRequest;
import org.apache.zookeeper.proto.GetEphemeralsResponse;
import org.apache.zookeeper.proto.GetMaxChildrenRequest;
import org.apache.zookeeper.proto.GetMaxChildrenResponse;
import org.apache.zookeeper.proto.GetSASLRequest;
import org.apache.zookeeper.proto.MultiHeader;
import org.apache.zookeeper.proto.ReconfigRequest;
import org.apache.zookeeper.proto.RemoveWatchesRequest;
import org.apache.zookeeper.proto.ReplyHeader;
import org.apache.zookeeper.proto.RequestHeader;
import org.apache.zookeeper.proto.SetACLRequest;
import org.apache.zookeeper.proto.SetACLResponse;
import org.apache.zookeeper.proto.SetDataRequest;
import org.apache.zookeeper.proto.SetDataResponse;
import org.apache.zookeeper.proto.SetMaxChildrenRequest;
import org.apache.zookeeper.proto.SetSASLRequest;
import org.apache.zookeeper.proto.SetSASLResponse;
import org.apache.zookeeper.proto.SetWatches;
import org.apache.zookeeper.proto.SetWatches2;
import org.apache.zookeeper.proto.SyncRequest;
import org.apache.zookeeper.proto.SyncResponse;
import org.apache.zookeeper.proto.WatcherEvent;
import org.apache.zookeeper.proto.WhoAmIResponse;
import org.apache.zookeeper.server.persistence.FileHeader;
import org.apache.zookeeper.server.quorum.LearnerInfo;
import org.apache.zookeeper.server.quorum.QuorumAuthPacket;
import org.apache.zookeeper.server.quorum.QuorumPacket;
import org.apache.zookeeper.txn.CheckVersionTxn;
import org.apache.zookeeper.txn.CloseSessionTxn;
import org.apache.zookeeper.txn.CreateContainerTxn;
import org.apache.zookeeper.txn.CreateSessionTxn;
import org.apache.zookeeper.txn.CreateTTLTxn;
import org.apache.zookeeper.txn.CreateTxn;
import org.apache.zookeeper.txn.CreateTxnV0;
import org.apache.zookeeper.txn.DeleteTxn;
import org.apache.zookeeper.txn.ErrorTxn;
import org.apache.zookeeper.txn.MultiTxn;
import org.apache.zookeeper.txn.SetACLTxn;
import org.apache.zookeeper.txn.SetDataTxn;
import org.apache.zookeeper.txn.SetMaxChildrenTxn;
import org.apache.zookeeper.txn.Txn;
import org.apache.zookeeper.txn.TxnDigest;
import org.apache.zookeeper.txn.TxnHeader;

/**
 * Generates golden jute vectors with the real ZooKeeper 3.9.5 classes.
 *
 * <p>Usage: {@code java ferrokeeper.golden.GoldenGen <output-dir>}. Every case becomes one
 * JSON file {@code <output-dir>/<dir>/<case>.json}. The output is fully deterministic (no
 * clocks, no randomness, fixed key order). See jute-schemas/golden/README.md for the format.
 *
 * <p>The {@code fields} object of a case is not built by hand: the record is serialized a
 * second time into {@link FieldRecorder}, an OutputArchive that turns the write calls into a
 * JSON tree. The generated jute code passes the schema field name as the tag of every write
 * and writes fields in schema order, so the keys and their order come straight from the
 * schema that was compiled into the 3.9.5 jar. As a cross-check the keys are compared with
 * the record class's declared fields.
 */
public final class GoldenGen {

    // ------------------------------------------------------------------ fixtures

    static final long SESSION_ID = 0x1000001abcdef01L;
    static final String DIGEST_ID = "user:tpUq/4Pn5A64fVZyQ0gOJ8ZWqkY=";
    /** "/ünïcødé/日本" (all BMP). */
    static final String UNICODE_PATH = "/\u00fcn\u00efc\u00f8d\u00e9/\u65e5\u672c";
    /** "/emoji/😀": U+1F600 is outside the BMP, a surrogate pair in a Java String. */
    static final String EMOJI_PATH = "/emoji/\uD83D\uDE00";
    /** NUL, SOH, TAB, LF, quote, backslash, DEL: exercises JSON escaping and Java's NUL encoding. */
    static final String CONTROL_PATH = "/ctl/\u0000\u0001\t\n\"\\\u007f";

    static Stat stat() {
        return new Stat(0x100000002L, 0x100000005L, 1700000000123L, 1700000456789L,
                3, 7, 1, SESSION_ID, 11, 2, 0x100000009L);
    }

    static Stat stat2() {
        return new Stat(0x200000010L, 0x200000011L, 1710000000000L, 1710000000999L,
                0, 0, 0, 0L, 5, 0, 0x200000010L);
    }

    static StatPersisted statPersisted() {
        return new StatPersisted(0x100000002L, 0x100000005L, 1700000000123L, 1700000456789L,
                3, 7, 1, SESSION_ID, 0x100000009L);
    }

    /** world:anyone perms 31 (ALL) and digest:user:hash perms 1 (READ). */
    static List<ACL> acls() {
        List<ACL> l = new ArrayList<>();
        l.add(new ACL(ZooDefs.Perms.ALL, new Id("world", "anyone")));
        l.add(new ACL(ZooDefs.Perms.READ, new Id("digest", DIGEST_ID)));
        return l;
    }

    static List<String> strings(String... s) {
        return new ArrayList<>(Arrays.asList(s));
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** b[i] = (i * mul + add) mod 256. */
    static byte[] pattern(int n, int mul, int add) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) ((i * mul + add) & 0xff);
        }
        return b;
    }

    static byte[] large() {
        return pattern(1000, 31, 7);
    }

    static byte[] passwd() {
        return pattern(16, 17, 0xa0);
    }

    // ------------------------------------------------------------------ state

    private final Path outDir;
    private final TreeMap<String, String> files = new TreeMap<>();
    private final Set<Class<?>> covered = new HashSet<>();
    /** cases whose Java decode -> re-encode does not give the same bytes (expected: CESU-8). */
    private final TreeSet<String> roundTripMismatches = new TreeSet<>();

    private GoldenGen(Path outDir) {
        this.outDir = outDir;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: GoldenGen <output-dir>");
            System.exit(2);
        }
        GoldenGen g = new GoldenGen(Paths.get(args[0]));
        g.dataCases();
        g.protoCases();
        g.txnCases();
        g.serverCases();
        g.edgeCases();
        g.handshakeCases();
        g.multiCases();
        g.negativeCases();
        g.checkCoverage();
        g.checkRoundTrips();
        g.writeAll();
    }

    // ------------------------------------------------------------------ cases

    private void dataCases() throws IOException {
        rec("basic", new Id("digest", DIGEST_ID));
        rec("world-anyone", new Id("world", "anyone"));
        rec("null-strings", new Id(null, null));
        rec("basic", new ACL(ZooDefs.Perms.ALL, new Id("world", "anyone")));
        rec("digest-read", new ACL(ZooDefs.Perms.READ, new Id("digest", DIGEST_ID)));
        rec("basic", stat());
        rec("zero", new Stat());
        rec("extremes", new Stat(Long.MIN_VALUE, Long.MAX_VALUE, -1L, 0L,
                Integer.MIN_VALUE, Integer.MAX_VALUE, -1, Long.MIN_VALUE, 0, Integer.MAX_VALUE,
                Long.MAX_VALUE));
        rec("basic", statPersisted());
        rec("basic", new ClientInfo("digest", "user"));
        rec("ip", new ClientInfo("ip", "127.0.0.1"));
    }

    private void protoCases() throws IOException {
        rec("basic", new ConnectRequest(0, 0x10000002aL, 40000, 0x10000a1b2c3d4e5L, passwd(), true));
        rec("basic", new ConnectResponse(0, 30000, SESSION_ID, passwd(), false));
        rec("readonly", new ConnectResponse(0, 30000, SESSION_ID, passwd(), true));

        rec("basic", new SetWatches(0x100000050L,
                strings("/app/config", "/app/leader"), strings("/app/lock"), strings("/app", "/")));
        rec("basic", new SetWatches2(0x100000050L,
                strings("/app/config"), strings("/app/lock"), strings("/app"),
                strings("/persistent"), strings("/recursive", "/tree")));
        rec("basic", new RequestHeader(7, ZooDefs.OpCode.getData));
        rec("ping", new RequestHeader(-2, ZooDefs.OpCode.ping));
        rec("auth", new RequestHeader(-4, ZooDefs.OpCode.auth));
        rec("set-watches", new RequestHeader(-8, ZooDefs.OpCode.setWatches));
        rec("close-session", new RequestHeader(42, ZooDefs.OpCode.closeSession));
        rec("basic", new MultiHeader(ZooDefs.OpCode.create, false, -1));
        rec("terminator", new MultiHeader(-1, true, -1));
        rec("error", new MultiHeader(ZooDefs.OpCode.error, false, -101));
        rec("basic", new AuthPacket(0, "digest", utf8("user:password")));
        rec("empty-auth", new AuthPacket(0, "world", new byte[0]));
        rec("basic", new ReplyHeader(7, 0x100000007L, 0));
        rec("watch-event", new ReplyHeader(-1, -1L, 0));
        rec("ping", new ReplyHeader(-2, 0x100000007L, 0));
        rec("no-node", new ReplyHeader(9, 0x100000007L, -101));
        rec("basic", new GetDataRequest("/app/config", true));
        rec("basic", new SetDataRequest("/app/config", utf8("hello world"), 3));
        rec("basic", new ReconfigRequest("server.4=127.0.0.4:2888:3888:participant;2181", "2",
                "server.1=127.0.0.1:2888:3888:participant;2181", 0x100000000L));
        rec("incremental", new ReconfigRequest("server.4=127.0.0.4:2888:3888:participant;2181", "2,3",
                null, -1L));
        rec("basic", new SetDataResponse(stat()));
        rec("basic", new GetSASLRequest(utf8("sasl-challenge-token")));
        rec("basic", new SetSASLRequest(utf8("sasl-response-token")));
        rec("basic", new SetSASLResponse(pattern(24, 5, 0x11)));
        rec("basic", new CreateRequest("/app/node", utf8("payload"), acls(), CreateMode.PERSISTENT.toFlag()));
        rec("ephemeral-sequential", new CreateRequest("/app/lock-", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE,
                CreateMode.EPHEMERAL_SEQUENTIAL.toFlag()));
        rec("container", new CreateRequest("/app/container", null, ZooDefs.Ids.OPEN_ACL_UNSAFE,
                CreateMode.CONTAINER.toFlag()));
        rec("basic", new CreateTTLRequest("/app/ttl", utf8("ttl-data"), acls(),
                CreateMode.PERSISTENT_WITH_TTL.toFlag(), 60000L));
        rec("sequential-ttl", new CreateTTLRequest("/app/ttl-", utf8("x"), ZooDefs.Ids.OPEN_ACL_UNSAFE,
                CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL.toFlag(), 0xffffffffffL));
        rec("basic", new DeleteRequest("/app/node", 3));
        rec("any-version", new DeleteRequest("/app/node", -1));
        rec("basic", new GetChildrenRequest("/app", true));
        rec("basic", new GetAllChildrenNumberRequest("/app"));
        rec("basic", new GetChildren2Request("/app", false));
        rec("basic", new CheckVersionRequest("/d", 7));
        rec("basic", new GetMaxChildrenRequest("/quota/app"));
        rec("basic", new GetMaxChildrenResponse(100));
        rec("basic", new SetMaxChildrenRequest("/quota/app", 100));
        rec("basic", new SyncRequest("/app"));
        rec("basic", new SyncResponse("/app"));
        rec("basic", new GetACLRequest("/app"));
        rec("basic", new SetACLRequest("/app", acls(), 2));
        rec("basic", new SetACLResponse(stat()));
        rec("basic", new AddWatchRequest("/app", 1));
        rec("persistent", new AddWatchRequest("/app", 0));
        rec("basic", new WatcherEvent(3, 3, "/app/config"));
        rec("session-expired", new WatcherEvent(-1, -112, null));
        rec("connected", new WatcherEvent(-1, 3, ""));
        rec("basic", new ErrorResponse(-101));
        rec("basic", new CreateResponse("/app/node0000000001"));
        rec("basic", new Create2Response("/app/node0000000001", stat()));
        rec("basic", new ExistsRequest("/app/config", true));
        rec("basic", new ExistsResponse(stat()));
        rec("basic", new GetDataResponse(utf8("hello world"), stat()));
        rec("basic", new GetChildrenResponse(strings("alpha", "beta", "gamma")));
        rec("basic", new GetAllChildrenNumberResponse(42));
        rec("basic", new GetChildren2Response(strings("alpha", "beta"), stat()));
        rec("basic", new GetACLResponse(acls(), stat()));
        rec("basic", new CheckWatchesRequest("/app", 1));
        rec("basic", new RemoveWatchesRequest("/app", 3));
        rec("basic", new GetEphemeralsRequest("/app"));
        rec("basic", new GetEphemeralsResponse(strings("/app/lock-0000000001", "/session/a")));
        rec("basic", new WhoAmIResponse(new ArrayList<>(List.of(
                new ClientInfo("ip", "127.0.0.1"), new ClientInfo("digest", "user")))));
    }

    private void txnCases() throws IOException {
        rec("basic", new TxnDigest(2, 0x12345678deadbeefL));
        rec("basic", new TxnHeader(SESSION_ID, 12, 0x10000000dL, 1700000000123L, ZooDefs.OpCode.create));
        rec("create-session", new TxnHeader(SESSION_ID, 0, 0x100000001L, 1700000000000L,
                ZooDefs.OpCode.createSession));
        rec("basic", new CreateTxnV0("/app/node", utf8("payload"), acls(), false));
        rec("basic", new CreateTxn("/app/node", utf8("payload"), acls(), true, 4));
        rec("basic", new CreateTTLTxn("/app/ttl", utf8("ttl-data"), acls(), 4, 60000L));
        rec("basic", new CreateContainerTxn("/app/container", new byte[0], acls(), 4));
        rec("basic", new DeleteTxn("/app/node"));
        rec("basic", new SetDataTxn("/app/config", utf8("new value"), 4));
        rec("basic", new CheckVersionTxn("/d", 7));
        rec("basic", new SetACLTxn("/app", acls(), 2));
        rec("basic", new SetMaxChildrenTxn("/quota/app", 100));
        rec("basic", new CreateSessionTxn(30000));
        rec("basic", new CloseSessionTxn(strings("/app/lock-0000000001", "/app/eph")));
        rec("empty", new CloseSessionTxn(new ArrayList<>()));
        rec("null", new CloseSessionTxn(null));
        rec("basic", new ErrorTxn(-101));
        rec("basic", new Txn(ZooDefs.OpCode.create,
                bytes(new CreateTxn("/m/a", utf8("a"), ZooDefs.Ids.OPEN_ACL_UNSAFE, false, 1))));
        List<Txn> txns = new ArrayList<>();
        txns.add(new Txn(ZooDefs.OpCode.create,
                bytes(new CreateTxn("/m/a", utf8("a"), ZooDefs.Ids.OPEN_ACL_UNSAFE, false, 1))));
        txns.add(new Txn(ZooDefs.OpCode.delete, bytes(new DeleteTxn("/m/b"))));
        txns.add(new Txn(ZooDefs.OpCode.setData, bytes(new SetDataTxn("/m/c", utf8("c"), 1))));
        txns.add(new Txn(ZooDefs.OpCode.check, bytes(new CheckVersionTxn("/m/d", 7))));
        rec("basic", new MultiTxn(txns));
        List<Txn> failed = new ArrayList<>();
        failed.add(new Txn(ZooDefs.OpCode.error, bytes(new ErrorTxn(0))));
        failed.add(new Txn(ZooDefs.OpCode.error, bytes(new ErrorTxn(-101))));
        rec("errors", new MultiTxn(failed));
    }

    /** Extra jute modules that live in the same zookeeper-jute jar (quorum and persistence). */
    private void serverCases() throws IOException {
        rec("basic", new LearnerInfo(3L, 0x10000, 0x100000000L));
        List<Id> auth = new ArrayList<>();
        auth.add(new Id("digest", DIGEST_ID));
        rec("basic", new QuorumPacket(2, 0x100000007L, utf8("proposal"), auth));
        rec("ping", new QuorumPacket(5, 0x100000007L, null, null));
        rec("basic", new QuorumAuthPacket(0xfa1afa1aL, 0, utf8("sasl-token")));
        rec("txnlog", new FileHeader(0x5a4b4c47, 2, 0L)); // "ZKLG"
        rec("snapshot", new FileHeader(0x5a4b534e, 2, -1L)); // "ZKSN"
    }

    private void edgeCases() throws IOException {
        // handshake shapes as specific clients send them
        rec("go-client", new ConnectRequest(0, 0L, 30000, 0L, new byte[16], false));
        rec("reconnect", new ConnectRequest(0, 0x7fffff00000abcdeL, 30000, SESSION_ID, passwd(), false));
        rec("extremes", new ConnectRequest(Integer.MIN_VALUE, Long.MIN_VALUE, Integer.MAX_VALUE,
                Long.MAX_VALUE, new byte[0], false));
        rec("null-passwd", new ConnectRequest(0, 0L, 30000, 0L, null, false));
        rec("expired", new ConnectResponse(0, 0, 0L, new byte[16], false));

        // buffers: null, empty, large
        rec("null-data", new GetDataResponse(null, stat()));
        rec("empty-data", new GetDataResponse(new byte[0], stat2()));
        rec("large-data", new GetDataResponse(large(), stat2()));
        rec("null-data", new SetDataRequest("/app/config", null, -1));
        rec("empty-data", new SetDataRequest("/app/config", new byte[0], -1));
        rec("large-data", new SetDataRequest("/app/big", large(), Integer.MAX_VALUE));
        rec("empty-token", new SetSASLResponse(new byte[0]));
        rec("null-token", new SetSASLResponse(null));

        // strings: null, empty, non-ASCII, non-BMP, control characters
        rec("null-joining-leaving", new ReconfigRequest(null, null,
                "server.1=127.0.0.1:2888:3888:participant;2181\nserver.2=127.0.0.2:2888:3888:participant;2181",
                -1L));
        rec("all-null", new ReconfigRequest(null, null, null, Long.MIN_VALUE));
        rec("empty-path", new GetDataRequest("", false));
        rec("null-path", new GetDataRequest(null, false));
        rec("unicode-path", new GetDataRequest(UNICODE_PATH, false));
        rec("emoji-path", new GetDataRequest(EMOJI_PATH, false));
        rec("control-chars", new GetDataRequest(CONTROL_PATH, true));
        rec("unicode-path", new CreateRequest(UNICODE_PATH, utf8("\u65e5\u672c"), acls(), 0));
        rec("emoji-path", new CreateRequest(EMOJI_PATH, utf8(EMOJI_PATH), ZooDefs.Ids.OPEN_ACL_UNSAFE, 0));
        rec("unicode-children", new GetChildrenResponse(strings("\u00fcn\u00efc\u00f8d\u00e9",
                "\u65e5\u672c", "\uD83D\uDE00", "")));

        // vectors: empty and null
        rec("empty-vectors", new SetWatches(0L, new ArrayList<>(), new ArrayList<>(), new ArrayList<>()));
        rec("null-vectors", new SetWatches(0L, null, null, null));
        rec("mixed-vectors", new SetWatches(-1L, strings("/a"), new ArrayList<>(), null));
        rec("empty-vectors", new SetWatches2(0x100000050L, new ArrayList<>(), new ArrayList<>(),
                new ArrayList<>(), new ArrayList<>(), new ArrayList<>()));
        rec("null-vectors", new SetWatches2(0L, null, null, null, null, null));
        rec("empty", new GetChildrenResponse(new ArrayList<>()));
        rec("null", new GetChildrenResponse(null));
        rec("empty-acl", new CreateRequest("/app/node", utf8("x"), new ArrayList<>(), 0));
        rec("null-acl", new CreateRequest("/app/node", utf8("x"), null, 0));
        rec("empty", new WhoAmIResponse(new ArrayList<>()));

        // extreme numbers
        rec("extremes", new ReplyHeader(Integer.MIN_VALUE, Long.MIN_VALUE, Integer.MAX_VALUE));
        rec("max-zxid", new ReplyHeader(Integer.MAX_VALUE, Long.MAX_VALUE, Integer.MIN_VALUE));
        rec("extremes", new RequestHeader(Integer.MIN_VALUE, Integer.MAX_VALUE));
        rec("extremes", new TxnHeader(Long.MIN_VALUE, Integer.MIN_VALUE, Long.MAX_VALUE, -1L,
                Integer.MAX_VALUE));
        rec("extremes", new CreateTTLRequest("/t", new byte[0], new ArrayList<>(), Integer.MIN_VALUE,
                Long.MAX_VALUE));
        rec("extremes", new StatPersisted(Long.MIN_VALUE, Long.MAX_VALUE, Long.MIN_VALUE, Long.MAX_VALUE,
                Integer.MIN_VALUE, Integer.MAX_VALUE, Integer.MIN_VALUE, Long.MIN_VALUE, Long.MAX_VALUE));
    }

    private void handshakeCases() throws IOException {
        // 44-byte ConnectRequest without readOnly, written field by field.
        byte[] passwdZero = new byte[16];
        ByteArrayOutputStream b44 = new ByteArrayOutputStream();
        BinaryOutputArchive a44 = BinaryOutputArchive.getArchive(b44);
        a44.writeInt(0, "protocolVersion");
        a44.writeLong(0L, "lastZxidSeen");
        a44.writeInt(30000, "timeOut");
        a44.writeLong(0L, "sessionId");
        a44.writeBuffer(passwdZero, "passwd");
        Map<String, Object> f44 = new LinkedHashMap<>();
        f44.put("protocolVersion", 0L);
        f44.put("lastZxidSeen", 0L);
        f44.put("timeOut", 30000L);
        f44.put("sessionId", 0L);
        f44.put("passwd", hex(passwdZero));
        byte[] bytes44 = b44.toByteArray();
        require(bytes44.length == 44, "connect-request-44 length " + bytes44.length);
        emit("handshake", "connect-request-44", "org.apache.zookeeper.proto", "ConnectRequest", bytes44, f44);

        ConnectRequest req45 = new ConnectRequest(0, 0L, 30000, 0L, passwdZero, false);
        byte[] bytes45 = bytes(req45);
        require(bytes45.length == 45, "connect-request-45 length " + bytes45.length);
        require(Arrays.equals(Arrays.copyOf(bytes45, 44), bytes44), "45 must extend 44");
        covered.add(ConnectRequest.class);
        emit("handshake", "connect-request-45", "org.apache.zookeeper.proto", "ConnectRequest", bytes45,
                fields(req45));

        ByteArrayOutputStream b36 = new ByteArrayOutputStream();
        BinaryOutputArchive a36 = BinaryOutputArchive.getArchive(b36);
        a36.writeInt(0, "protocolVersion");
        a36.writeInt(30000, "timeOut");
        a36.writeLong(SESSION_ID, "sessionId");
        a36.writeBuffer(passwd(), "passwd");
        Map<String, Object> f36 = new LinkedHashMap<>();
        f36.put("protocolVersion", 0L);
        f36.put("timeOut", 30000L);
        f36.put("sessionId", SESSION_ID);
        f36.put("passwd", hex(passwd()));
        byte[] bytes36 = b36.toByteArray();
        require(bytes36.length == 36, "connect-response-36 length " + bytes36.length);
        emit("handshake", "connect-response-36", "org.apache.zookeeper.proto", "ConnectResponse", bytes36, f36);

        ConnectResponse resp37 = new ConnectResponse(0, 30000, SESSION_ID, passwd(), false);
        byte[] bytes37 = bytes(resp37);
        require(bytes37.length == 37, "connect-response-37 length " + bytes37.length);
        require(Arrays.equals(Arrays.copyOf(bytes37, 36), bytes36), "37 must extend 36");
        emit("handshake", "connect-response-37", "org.apache.zookeeper.proto", "ConnectResponse", bytes37,
                fields(resp37));

        // Cross-check with the 3.9.5 server's ProtocolManager: it sniffs whether the request
        // carried readOnly and mirrors that in the response it writes (36 vs 37 bytes).
        require(Arrays.equals(serverReply(bytes44, resp37), bytes36), "ProtocolManager reply to 44 bytes");
        require(Arrays.equals(serverReply(bytes45, resp37), bytes37), "ProtocolManager reply to 45 bytes");
    }

    private static byte[] serverReply(byte[] request, ConnectResponse response) throws IOException {
        ProtocolManager pm = new ProtocolManager();
        pm.deserializeConnectRequest(BinaryInputArchive.getArchive(new ByteArrayInputStream(request)));
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        pm.serializeConnectResponse(response, BinaryOutputArchive.getArchive(bos));
        return bos.toByteArray();
    }

    private void multiCases() throws IOException {
        byte[] data = utf8("multi-data");
        multiRequest("request-mixed", List.of(
                Op.create("/a", data, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                Op.create("/a/seq-", data, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL_SEQUENTIAL),
                Op.delete("/b", 3),
                Op.setData("/c", data, -1),
                Op.check("/d", 7)));
        multiRequest("request-create-kinds", List.of(
                Op.create("/ttl", data, acls(), CreateMode.PERSISTENT_WITH_TTL, 60000L),
                Op.create("/container", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER),
                Op.create("/flags", null, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL.toFlag())));
        multiRequest("request-read", List.of(
                Op.getData("/a"),
                Op.getChildren("/b"),
                Op.getData(UNICODE_PATH)));
        multiRequest("request-empty", List.of());

        MultiResponse ok = new MultiResponse();
        ok.add(new OpResult.CreateResult("/a"));
        ok.add(new OpResult.CreateResult("/a/seq-0000000001", stat()));
        ok.add(new OpResult.DeleteResult());
        ok.add(new OpResult.SetDataResult(stat2()));
        ok.add(new OpResult.CheckResult());
        multiResponse("response-ok", ok);

        MultiResponse failed = new MultiResponse();
        failed.add(new OpResult.ErrorResult(0));
        failed.add(new OpResult.ErrorResult(-101));
        failed.add(new OpResult.ErrorResult(-2));
        multiResponse("response-failed", failed);

        MultiResponse read = new MultiResponse();
        read.add(new OpResult.GetDataResult(utf8("value-a"), stat()));
        read.add(new OpResult.GetChildrenResult(strings("x", "y")));
        read.add(new OpResult.ErrorResult(-101));
        multiResponse("response-read", read);

        multiResponse("response-empty", new MultiResponse());
    }

    private void multiRequest(String caseName, List<Op> ops) throws IOException {
        MultiOperationRecord r = new MultiOperationRecord(ops);
        byte[] actual = bytes(r);
        // Rebuild the byte stream from the documented structure and insist it matches.
        ByteArrayOutputStream expect = new ByteArrayOutputStream();
        BinaryOutputArchive a = BinaryOutputArchive.getArchive(expect);
        List<Object> jsonOps = new ArrayList<>();
        for (Op op : ops) {
            MultiHeader h = new MultiHeader(op.getType(), false, -1);
            Record body = op.toRequestRecord();
            h.serialize(a, "");
            body.serialize(a, "");
            jsonOps.add(opJson(h, body));
        }
        new MultiHeader(-1, true, -1).serialize(a, "");
        require(Arrays.equals(actual, expect.toByteArray()), "multi request structure mismatch: " + caseName);
        Map<String, Object> f = new LinkedHashMap<>();
        f.put("ops", jsonOps);
        emit("multi", caseName, "org.apache.zookeeper", "MultiOperationRecord", actual, f);
        roundTrip("multi/" + caseName, r, actual);
    }

    private void multiResponse(String caseName, MultiResponse r) throws IOException {
        byte[] actual = bytes(r);
        ByteArrayOutputStream expect = new ByteArrayOutputStream();
        BinaryOutputArchive a = BinaryOutputArchive.getArchive(expect);
        List<Object> jsonOps = new ArrayList<>();
        for (OpResult res : r) {
            int type = res.getType();
            int err = type == ZooDefs.OpCode.error ? ((OpResult.ErrorResult) res).getErr() : 0;
            MultiHeader h = new MultiHeader(type, false, err);
            Record body = responseBody(res);
            h.serialize(a, "");
            if (body != null) {
                body.serialize(a, "");
            }
            jsonOps.add(opJson(h, body));
        }
        new MultiHeader(-1, true, -1).serialize(a, "");
        require(Arrays.equals(actual, expect.toByteArray()), "multi response structure mismatch: " + caseName);
        Map<String, Object> f = new LinkedHashMap<>();
        f.put("ops", jsonOps);
        emit("multi", caseName, "org.apache.zookeeper", "MultiResponse", actual, f);
        roundTrip("multi/" + caseName, r, actual);
    }

    private static Record responseBody(OpResult res) throws IOException {
        switch (res.getType()) {
            case ZooDefs.OpCode.create:
                return new CreateResponse(((OpResult.CreateResult) res).getPath());
            case ZooDefs.OpCode.create2: {
                OpResult.CreateResult c = (OpResult.CreateResult) res;
                return new Create2Response(c.getPath(), c.getStat());
            }
            case ZooDefs.OpCode.delete:
            case ZooDefs.OpCode.check:
                return null;
            case ZooDefs.OpCode.setData:
                return new SetDataResponse(((OpResult.SetDataResult) res).getStat());
            case ZooDefs.OpCode.getChildren:
                return new GetChildrenResponse(((OpResult.GetChildrenResult) res).getChildren());
            case ZooDefs.OpCode.getData: {
                OpResult.GetDataResult g = (OpResult.GetDataResult) res;
                return new GetDataResponse(g.getData(), g.getStat());
            }
            case ZooDefs.OpCode.error:
                return new ErrorResponse(((OpResult.ErrorResult) res).getErr());
            default:
                throw new IOException("unexpected OpResult type " + res.getType());
        }
    }

    private static Map<String, Object> opJson(MultiHeader h, Record body) throws IOException {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", (long) h.getType());
        m.put("done", h.getDone());
        m.put("err", (long) h.getErr());
        m.put("body", body == null ? null : fields(body));
        m.put("bodyRecord", body == null ? null : body.getClass().getSimpleName());
        return m;
    }

    private void negativeCases() throws IOException {
        String stat = hex(bytes(stat()));
        String zxid = "0000000100000050";
        negative("GetDataRequest", "string-len-minus-2", "fffffffe" + "00",
                "ustring length -2: only -1 (null) is a legal negative length");
        negative("GetDataRequest", "string-len-huge", "7fffffff" + "2f61" + "01",
                "ustring length 0x7fffffff with only 3 bytes left (also far above jute.maxbuffer)");
        negative("Stat", "truncated-67", stat.substring(0, 67 * 2),
                "Stat is exactly 68 bytes; the last byte of pzxid is missing");
        negative("SetWatches", "vector-count-minus-2", zxid + "fffffffe" + "00000000" + "00000000",
                "vector count -2: Java 3.9.5 accepts this and decodes it as an empty vector"
                        + " (BinaryIndex.done() is n <= 0); a decoder must do the same");
        negative("SetWatches", "vector-count-huge", zxid + "10000000" + "00000001" + "61",
                "vector count 0x10000000 but only one 1-byte string follows");
        negative("GetDataResponse", "buffer-len-minus-2", "fffffffe" + stat,
                "buffer length -2: only -1 (null) is a legal negative length");
        negative("ReplyHeader", "truncated-15", hex(bytes(new ReplyHeader(7, 0x100000007L, 0))).substring(0, 30),
                "ReplyHeader is exactly 16 bytes; the last byte of err is missing");
        negative("ConnectRequest", "passwd-truncated",
                "00000000" + "0000000000000000" + "00007530" + "0000000000000000" + "00000010"
                        + "0000000000000000",
                "passwd length 16 but only 8 bytes follow (and no readOnly byte)");
        negative("GetChildrenResponse", "string-past-end", "00000002" + "00000001" + "61" + "0000000a" + "626364",
                "second ustring claims 10 bytes, 3 remain");
        negative("RequestHeader", "empty", "", "no bytes at all for an 8-byte record");
    }

    // ------------------------------------------------------------------ emitting

    private void rec(String caseName, Record r) throws IOException {
        Class<?> c = r.getClass();
        covered.add(c);
        byte[] b = bytes(r);
        Map<String, Object> f = fields(r);
        checkAgainstDeclaredFields(r, f);
        emit(c.getSimpleName(), caseName, c.getPackageName(), c.getSimpleName(), b, f);
        roundTrip(c.getSimpleName() + "/" + caseName, r, b);
    }

    private void emit(String dir, String caseName, String module, String record, byte[] b,
            Map<String, Object> fields) {
        Map<String, Object> top = new LinkedHashMap<>();
        top.put("module", module);
        top.put("record", record);
        top.put("case", caseName);
        top.put("hex", hex(b));
        top.put("fields", fields);
        put(dir + "/" + caseName + ".json", top);
    }

    private void negative(String record, String caseName, String hex, String why) throws IOException {
        Class<?> c = recordClass(record);
        Map<String, Object> top = new LinkedHashMap<>();
        top.put("module", c.getPackageName());
        top.put("record", record);
        top.put("case", caseName);
        top.put("hex", hex);
        String javaDecode = javaDecode(c, unhex(hex));
        top.put("expect", javaDecode.startsWith("ok") ? "ok" : "error");
        top.put("why", why);
        top.put("javaDecode", javaDecode);
        put("negative/" + record + "-" + caseName + ".json", top);
    }

    private static Class<?> recordClass(String simpleName) {
        for (String pkg : List.of("org.apache.zookeeper.proto", "org.apache.zookeeper.data",
                "org.apache.zookeeper.txn")) {
            try {
                return Class.forName(pkg + "." + simpleName);
            } catch (ClassNotFoundException e) {
                // try the next package
            }
        }
        throw new IllegalArgumentException("unknown record " + simpleName);
    }

    /** What ZooKeeper's own BinaryInputArchive makes of the bytes (informational). */
    private static String javaDecode(Class<?> c, byte[] b) {
        try {
            Record r = (Record) c.getDeclaredConstructor().newInstance();
            ByteArrayInputStream in = new ByteArrayInputStream(b);
            r.deserialize(BinaryInputArchive.getArchive(in), "");
            StringBuilder sb = new StringBuilder("ok: ");
            writeCompact(sb, fields(r));
            if (in.available() > 0) {
                sb.append(" (").append(in.available()).append(" trailing bytes)");
            }
            return sb.toString();
        } catch (Exception e) {
            return "error: " + e.getClass().getName() + (e.getMessage() == null ? "" : ": " + e.getMessage());
        }
    }

    private void put(String rel, Map<String, Object> top) {
        StringBuilder sb = new StringBuilder();
        writePretty(sb, top, 0);
        sb.append('\n');
        if (files.put(rel, sb.toString()) != null) {
            throw new IllegalStateException("duplicate case " + rel);
        }
    }

    private void writeAll() throws IOException {
        for (Map.Entry<String, String> e : files.entrySet()) {
            Path p = outDir.resolve(e.getKey());
            Files.createDirectories(p.getParent());
            Files.write(p, e.getValue().getBytes(StandardCharsets.UTF_8));
        }
        System.out.println("golden-gen: wrote " + files.size() + " files to " + outDir);
    }

    // ------------------------------------------------------------------ checks

    /** Every jute record class in the zookeeper-jute jar must have at least one case. */
    private void checkCoverage() throws Exception {
        URL loc = Stat.class.getProtectionDomain().getCodeSource().getLocation();
        List<String> missing = new ArrayList<>();
        try (JarFile jar = new JarFile(new File(loc.toURI()))) {
            Enumeration<JarEntry> en = jar.entries();
            while (en.hasMoreElements()) {
                String n = en.nextElement().getName();
                if (!n.startsWith("org/apache/zookeeper/") || !n.endsWith(".class") || n.contains("$")) {
                    continue;
                }
                Class<?> c = Class.forName(n.substring(0, n.length() - 6).replace('/', '.'));
                if (Record.class.isAssignableFrom(c) && !covered.contains(c)) {
                    missing.add(c.getName());
                }
            }
        }
        require(missing.isEmpty(), "record classes without a case: " + missing);
    }

    private void roundTrip(String id, Record r, byte[] b) throws IOException {
        Record copy;
        try {
            copy = r.getClass().getDeclaredConstructor().newInstance();
        } catch (ReflectiveOperationException e) {
            throw new IOException(e);
        }
        ByteArrayInputStream in = new ByteArrayInputStream(b);
        copy.deserialize(BinaryInputArchive.getArchive(in), "");
        require(in.available() == 0, "trailing bytes after decoding " + id);
        if (!Arrays.equals(bytes(copy), b)) {
            roundTripMismatches.add(id);
        }
    }

    /**
     * Java's writer emits CESU-8 for supplementary characters but its reader decodes with
     * the standard UTF-8 decoder, so exactly the non-BMP cases must fail to round-trip.
     */
    private void checkRoundTrips() {
        Set<String> expected = Set.of("GetDataRequest/emoji-path", "CreateRequest/emoji-path",
                "GetChildrenResponse/unicode-children");
        require(roundTripMismatches.equals(expected), "unexpected Java round-trip mismatches: "
                + roundTripMismatches);
    }

    private static void checkAgainstDeclaredFields(Record r, Map<String, Object> f) {
        List<String> declared = new ArrayList<>();
        for (Field fd : r.getClass().getDeclaredFields()) {
            if (!Modifier.isStatic(fd.getModifiers())) {
                declared.add(fd.getName());
            }
        }
        require(declared.equals(new ArrayList<>(f.keySet())),
                r.getClass().getName() + ": declared " + declared + " but serialized " + f.keySet());
    }

    private static void require(boolean ok, String msg) {
        if (!ok) {
            throw new IllegalStateException(msg);
        }
    }

    // ------------------------------------------------------------------ bytes and hex

    static byte[] bytes(Record r) throws IOException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        r.serialize(BinaryOutputArchive.getArchive(bos), "");
        return bos.toByteArray();
    }

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder(b.length * 2);
        for (byte x : b) {
            sb.append(HEX[(x >> 4) & 0xf]).append(HEX[x & 0xf]);
        }
        return sb.toString();
    }

    static byte[] unhex(String s) {
        byte[] b = new byte[s.length() / 2];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return b;
    }

    // ------------------------------------------------------------------ field recorder

    static Map<String, Object> fields(Record r) throws IOException {
        FieldRecorder rec = new FieldRecorder();
        r.serialize(rec, "");
        return rec.root;
    }

    /**
     * An OutputArchive that builds a JSON tree (LinkedHashMap / ArrayList / Long / Boolean /
     * String / null) from the write calls of a record's generated serialize().
     */
    static final class FieldRecorder implements OutputArchive {
        private static final Object NULL_VECTOR = new Object();
        private final Deque<Object> stack = new ArrayDeque<>();
        Map<String, Object> root;

        @SuppressWarnings("unchecked")
        private void add(String tag, Object v) {
            Object top = stack.peek();
            if (top instanceof Map) {
                Map<String, Object> m = (Map<String, Object>) top;
                require(!m.containsKey(tag), "duplicate tag " + tag);
                m.put(tag, v);
            } else if (top instanceof List) {
                ((List<Object>) top).add(v);
            } else {
                throw new IllegalStateException("value " + tag + " outside of a record or vector");
            }
        }

        @Override
        public void writeByte(byte b, String tag) {
            add(tag, (long) b);
        }

        @Override
        public void writeBool(boolean b, String tag) {
            add(tag, b);
        }

        @Override
        public void writeInt(int i, String tag) {
            add(tag, (long) i);
        }

        @Override
        public void writeLong(long l, String tag) {
            add(tag, l);
        }

        @Override
        public void writeFloat(float f, String tag) {
            throw new UnsupportedOperationException("float");
        }

        @Override
        public void writeDouble(double d, String tag) {
            throw new UnsupportedOperationException("double");
        }

        @Override
        public void writeString(String s, String tag) {
            add(tag, s);
        }

        @Override
        public void writeBuffer(byte[] buf, String tag) {
            add(tag, buf == null ? null : hex(buf));
        }

        @Override
        public void writeRecord(Record r, String tag) throws IOException {
            r.serialize(this, tag);
        }

        @Override
        public void startRecord(Record r, String tag) {
            Map<String, Object> m = new LinkedHashMap<>();
            if (stack.isEmpty()) {
                require(root == null, "second top-level record");
                root = m;
            } else {
                add(tag, m);
            }
            stack.push(m);
        }

        @Override
        public void endRecord(Record r, String tag) {
            require(stack.pop() instanceof Map, "unbalanced endRecord");
        }

        @Override
        public void startVector(List<?> v, String tag) {
            if (v == null) {
                add(tag, null);
                stack.push(NULL_VECTOR);
            } else {
                List<Object> l = new ArrayList<>();
                add(tag, l);
                stack.push(l);
            }
        }

        @Override
        public void endVector(List<?> v, String tag) {
            Object top = stack.pop();
            require(top == NULL_VECTOR || top instanceof List, "unbalanced endVector");
        }

        @Override
        public void startMap(java.util.TreeMap<?, ?> m, String tag) {
            throw new UnsupportedOperationException("map");
        }

        @Override
        public void endMap(java.util.TreeMap<?, ?> m, String tag) {
            throw new UnsupportedOperationException("map");
        }

        @Override
        public long getDataSize() {
            return 0;
        }
    }

    // ------------------------------------------------------------------ JSON writer

    private static void indent(StringBuilder sb, int n) {
        for (int i = 0; i < n; i++) {
            sb.append("  ");
        }
    }

    /** Pretty printer: two-space indent, one member per line, "[]"/"{}" when empty. */
    @SuppressWarnings("unchecked")
    static void writePretty(StringBuilder sb, Object v, int level) {
        if (v instanceof Map) {
            Map<String, Object> m = (Map<String, Object>) v;
            if (m.isEmpty()) {
                sb.append("{}");
                return;
            }
            sb.append("{\n");
            int i = 0;
            for (Map.Entry<String, Object> e : m.entrySet()) {
                indent(sb, level + 1);
                quote(sb, e.getKey());
                sb.append(": ");
                writePretty(sb, e.getValue(), level + 1);
                sb.append(++i < m.size() ? ",\n" : "\n");
            }
            indent(sb, level);
            sb.append('}');
        } else if (v instanceof List) {
            List<Object> l = (List<Object>) v;
            if (l.isEmpty()) {
                sb.append("[]");
                return;
            }
            sb.append("[\n");
            for (int i = 0; i < l.size(); i++) {
                indent(sb, level + 1);
                writePretty(sb, l.get(i), level + 1);
                sb.append(i + 1 < l.size() ? ",\n" : "\n");
            }
            indent(sb, level);
            sb.append(']');
        } else {
            writeScalar(sb, v);
        }
    }

    @SuppressWarnings("unchecked")
    static void writeCompact(StringBuilder sb, Object v) {
        if (v instanceof Map) {
            sb.append('{');
            int i = 0;
            for (Map.Entry<String, Object> e : ((Map<String, Object>) v).entrySet()) {
                if (i++ > 0) {
                    sb.append(',');
                }
                quote(sb, e.getKey());
                sb.append(':');
                writeCompact(sb, e.getValue());
            }
            sb.append('}');
        } else if (v instanceof List) {
            sb.append('[');
            int i = 0;
            for (Object o : (List<Object>) v) {
                if (i++ > 0) {
                    sb.append(',');
                }
                writeCompact(sb, o);
            }
            sb.append(']');
        } else {
            writeScalar(sb, v);
        }
    }

    private static void writeScalar(StringBuilder sb, Object v) {
        if (v == null) {
            sb.append("null");
        } else if (v instanceof String) {
            quote(sb, (String) v);
        } else if (v instanceof Long || v instanceof Boolean) {
            sb.append(v);
        } else {
            throw new IllegalArgumentException("unsupported JSON value " + v.getClass());
        }
    }

    /**
     * JSON string escaping: quote and backslash escaped, U+0000..U+001F, U+007F, U+2028,
     * U+2029 and unpaired surrogates as \\uXXXX; everything else is written as itself (the
     * file is UTF-8, so a surrogate pair becomes one 4-byte UTF-8 sequence).
     */
    private static void unicodeEscape(StringBuilder sb, char c) {
        sb.append("\\u").append(HEX[(c >> 12) & 0xf]).append(HEX[(c >> 8) & 0xf])
                .append(HEX[(c >> 4) & 0xf]).append(HEX[c & 0xf]);
    }

    static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"') {
                sb.append("\\\"");
            } else if (c == '\\') {
                sb.append("\\\\");
            } else if (c < 0x20 || c == 0x7f || c == 0x2028 || c == 0x2029) {
                unicodeEscape(sb, c);
            } else if (Character.isHighSurrogate(c) && i + 1 < s.length()
                    && Character.isLowSurrogate(s.charAt(i + 1))) {
                sb.append(c).append(s.charAt(i + 1));
                i++;
            } else if (Character.isSurrogate(c)) {
                unicodeEscape(sb, c);
            } else {
                sb.append(c);
            }
        }
        sb.append('"');
    }
}
