package dev.ferrokeeper.compat.curator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.api.transaction.OperationType;
import org.apache.curator.framework.imps.EnsembleTracker;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.server.quorum.flexible.QuorumMaj;
import org.apache.zookeeper.server.quorum.flexible.QuorumVerifier;

/**
 * Framework-level features the recipes rely on: container parents (createContainer),
 * create2 stats, protected sequential nodes, transactions (multi), watcher
 * management (addWatch / removeWatches), ACLs with digest auth, TTL nodes and
 * the ensemble tracker reading /zookeeper/config.
 */
class FrameworkTest extends CompatBase {

    private boolean exists(String path) {
        try {
            return admin().checkExists().forPath(path) != null;
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    @CuratorTest
    void creatingParentContainersIfNeeded() throws Exception {
        CuratorFramework c = newClient();
        c.create().creatingParentsIfNeeded().forPath(base);
        String leaf = base + "/app/config/db";
        String created = c.create().creatingParentContainersIfNeeded().forPath(leaf, bytes("url=x"));
        assertEquals(leaf, created);
        assertArrayEquals(bytes("url=x"), c.getData().forPath(leaf));
        for (String parent : List.of(base + "/app", base + "/app/config")) {
            Stat st = c.checkExists().forPath(parent);
            assertNotNull(st, parent + " created");
            assertEquals(0, st.getDataLength(), parent + " data");
            assertEquals(1, st.getNumChildren(), parent + " children");
        }
        // Existing parents are left alone; a second leaf reuses them.
        c.create().creatingParentContainersIfNeeded().forPath(base + "/app/config/cache", bytes("ttl=5"));
        assertEquals(List.of("cache", "db"), sorted(c.getChildren().forPath(base + "/app/config")));
        // createContainers() and an explicit CONTAINER create.
        c.createContainers(base + "/box/inner");
        assertNotNull(c.checkExists().forPath(base + "/box/inner"));
        c.create().withMode(CreateMode.CONTAINER).forPath(base + "/crate", bytes("c"));
        assertArrayEquals(bytes("c"), c.getData().forPath(base + "/crate"));
        // A container is a normal parent: ephemeral children under it are fine.
        c.create().withMode(CreateMode.EPHEMERAL).forPath(base + "/crate/e");
        assertEquals(List.of("e"), c.getChildren().forPath(base + "/crate"));
    }

    /** Needs the server's container reaper (Apache: znode.container.checkIntervalMs=1000). */
    @CuratorTest
    void emptyContainerParentsAreReaped() throws Exception {
        CuratorFramework c = newClient();
        c.create().creatingParentsIfNeeded().forPath(base + "/keep");  // persistent
        c.create().creatingParentContainersIfNeeded().forPath(base + "/app/config/db", bytes("x"));
        c.create().withMode(CreateMode.CONTAINER).forPath(base + "/never-used");
        c.delete().forPath(base + "/app/config/db");
        await("empty container parents deleted by the server", 30,
                () -> !exists(base + "/app/config") && !exists(base + "/app"));
        assertTrue(exists(base + "/keep"), "persistent node stays");
        assertTrue(exists(base + "/never-used"), "a container that never had children stays");
        assertTrue(exists(base), "persistent base stays");
    }

    @CuratorTest
    void storingStatInFillsCreate2Stat() throws Exception {
        CuratorFramework c = newClient();
        c.create().creatingParentsIfNeeded().forPath(base);
        Stat parentBefore = c.checkExists().forPath(base);
        Stat st = new Stat();
        String p = c.create().storingStatIn(st).forPath(base + "/n", bytes("hello"));
        assertEquals(base + "/n", p);
        assertTrue(st.getCzxid() > 0, "czxid filled: " + st);
        assertEquals(st.getCzxid(), st.getMzxid(), "mzxid == czxid");
        assertEquals(st.getCzxid(), st.getPzxid(), "pzxid == czxid");
        assertTrue(st.getCtime() > 0, "ctime filled");
        assertEquals(st.getCtime(), st.getMtime(), "mtime == ctime");
        assertEquals(0, st.getVersion());
        assertEquals(0, st.getCversion());
        assertEquals(0, st.getAversion());
        assertEquals(5, st.getDataLength());
        assertEquals(0, st.getNumChildren());
        assertEquals(0, st.getEphemeralOwner());
        assertEquals(st, c.checkExists().forPath(base + "/n"), "create2 stat equals exists() stat");
        Stat parent = c.checkExists().forPath(base);
        assertEquals(st.getCzxid(), parent.getPzxid(), "parent pzxid is the child's czxid");
        assertEquals(parentBefore.getCversion() + 1, parent.getCversion(), "parent cversion");

        Stat est = new Stat();
        String e = c.create().storingStatIn(est).withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(base + "/e-");
        assertTrue(e.matches(Pattern.quote(base) + "/e-\\d{10}"), "sequential name: " + e);
        assertEquals(c.getZookeeperClient().getZooKeeper().getSessionId(), est.getEphemeralOwner(), "ephemeral owner");
        assertTrue(est.getCzxid() > st.getCzxid(), "zxids increase");

        Stat set = c.setData().forPath(base + "/n", bytes("bye"));
        assertEquals(1, set.getVersion());
        assertTrue(set.getMzxid() > st.getMzxid());
        assertEquals(st.getCzxid(), set.getCzxid());
        Stat got = new Stat();
        assertArrayEquals(bytes("bye"), c.getData().storingStatIn(got).forPath(base + "/n"));
        assertEquals(set, got, "getData stat equals setData stat");

        // orSetData / idempotent create
        Stat os = new Stat();
        c.create().orSetData().storingStatIn(os).forPath(base + "/n", bytes("again"));
        assertArrayEquals(bytes("again"), c.getData().forPath(base + "/n"));
        c.create().idempotent().forPath(base + "/idem", bytes("1"));
        c.create().idempotent().forPath(base + "/idem", bytes("1"));
        assertThrows(KeeperException.NodeExistsException.class,
                () -> c.create().idempotent().forPath(base + "/idem", bytes("2")));
    }

    private static List<String> sorted(List<String> l) {
        List<String> out = new ArrayList<>(l);
        out.sort(null);
        return out;
    }

    @CuratorTest
    void protectedEphemeralSequential() throws Exception {
        CuratorFramework c = newClient();
        c.create().creatingParentsIfNeeded().forPath(base + "/jobs");
        Pattern name = Pattern.compile("_c_([0-9a-f-]{36})-job-(\\d{10})");
        long last = -1;
        for (int i = 0; i < 5; i++) {
            String p = c.create().withProtection().withMode(CreateMode.EPHEMERAL_SEQUENTIAL)
                    .forPath(base + "/jobs/job-", bytes("j" + i));
            String node = p.substring(p.lastIndexOf('/') + 1);
            Matcher m = name.matcher(node);
            assertTrue(m.matches(), "protected sequential name: " + node);
            long seq = Long.parseLong(m.group(2));
            assertTrue(seq > last, "sequence numbers increase: " + seq + " after " + last);
            last = seq;
        }
        assertEquals(5, c.getChildren().forPath(base + "/jobs").size());
        // Sequence numbers come from the parent's cversion; a plain child bumps it too.
        c.create().forPath(base + "/jobs/plain");
        String p = c.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(base + "/jobs/s-");
        assertEquals(base + "/jobs/s-" + String.format("%010d", last + 2), p);
    }

    @CuratorTest
    void transactionsAreAtomic() throws Exception {
        CuratorFramework c = newClient();
        c.create().creatingParentsIfNeeded().forPath(base + "/t", bytes("0"));
        List<CuratorTransactionResult> res = c.transaction().forOperations(
                c.transactionOp().create().forPath(base + "/t/a", bytes("a")),
                c.transactionOp().create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(base + "/t/s-"),
                c.transactionOp().setData().forPath(base + "/t", bytes("1")),
                c.transactionOp().check().withVersion(1).forPath(base + "/t"));
        assertEquals(4, res.size());
        assertEquals(OperationType.CREATE, res.get(0).getType());
        assertEquals(base + "/t/a", res.get(0).getResultPath());
        assertTrue(res.get(1).getResultPath().matches(Pattern.quote(base) + "/t/s-\\d{10}"), res.get(1).getResultPath());
        assertEquals(OperationType.SET_DATA, res.get(2).getType());
        assertEquals(1, res.get(2).getResultStat().getVersion());
        assertEquals(OperationType.CHECK, res.get(3).getType());

        // One failing op: nothing is applied.
        assertThrows(KeeperException.BadVersionException.class, () -> c.transaction().forOperations(
                c.transactionOp().create().forPath(base + "/t/b"),
                c.transactionOp().delete().forPath(base + "/t/a"),
                c.transactionOp().check().withVersion(7).forPath(base + "/t")));
        assertNull(c.checkExists().forPath(base + "/t/b"), "create rolled back");
        assertNotNull(c.checkExists().forPath(base + "/t/a"), "delete rolled back");
        assertArrayEquals(bytes("1"), c.getData().forPath(base + "/t"));

        // sync() in the background completes.
        CountDownLatch synced = new CountDownLatch(1);
        c.sync().inBackground((cl, ev) -> synced.countDown()).forPath(base + "/t");
        assertTrue(synced.await(WAIT_S, TimeUnit.SECONDS), "sync callback");
    }

    @CuratorTest
    void watcherManagement() throws Exception {
        CuratorFramework c = newClient();
        CuratorFramework writer = newClient();
        c.create().creatingParentsIfNeeded().forPath(base + "/w");
        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        Watcher recursive = (WatchedEvent e) -> {
            if (e.getType() != Watcher.Event.EventType.None) {
                events.add(e.getType() + " " + e.getPath());
            }
        };
        c.watchers().add().withMode(AddWatchMode.PERSISTENT_RECURSIVE).usingWatcher(recursive).forPath(base + "/w");
        writer.create().forPath(base + "/w/x");
        writer.create().forPath(base + "/w/x/y");
        writer.setData().forPath(base + "/w/x", bytes("1"));
        writer.delete().forPath(base + "/w/x/y");
        for (String want : List.of("NodeCreated " + base + "/w/x", "NodeCreated " + base + "/w/x/y",
                "NodeDataChanged " + base + "/w/x", "NodeDeleted " + base + "/w/x/y")) {
            assertEquals(want, events.poll(WAIT_S, TimeUnit.SECONDS));
        }
        // removeWatches: no more events afterwards.
        c.watchers().remove(recursive).forPath(base + "/w");
        writer.setData().forPath(base + "/w/x", bytes("2"));
        String after = events.poll(500, TimeUnit.MILLISECONDS);
        assertTrue(after == null || after.startsWith("PersistentWatchRemoved") || after.startsWith("DataWatchRemoved")
                || after.startsWith("ChildWatchRemoved"), "no event after removal, got " + after);

        // A one-shot data watch, removed before it fires; removing it twice fails.
        BlockingQueue<String> oneShot = new LinkedBlockingQueue<>();
        Watcher w = e -> oneShot.add(e.getType().toString());
        c.checkExists().usingWatcher(w).forPath(base + "/w/x");
        c.watchers().remove(w).ofType(Watcher.WatcherType.Data).forPath(base + "/w/x");
        assertEquals("DataWatchRemoved", oneShot.poll(WAIT_S, TimeUnit.SECONDS));
        assertThrows(KeeperException.NoWatcherException.class,
                () -> c.watchers().remove(w).ofType(Watcher.WatcherType.Data).forPath(base + "/w/x"));
        writer.setData().forPath(base + "/w/x", bytes("3"));
        assertNull(oneShot.poll(300, TimeUnit.MILLISECONDS), "removed watch does not fire");
    }

    @CuratorTest
    void aclWithDigestAuthorization() throws Exception {
        CuratorFramework owner = CuratorFrameworkFactory.builder().connectString(connectString())
                .retryPolicy(new RetryNTimes(3, 250)).authorization("digest", bytes("alice:secret")).build();
        closeLater(owner);
        owner.start();
        assertTrue(owner.blockUntilConnected((int) WAIT_S, TimeUnit.SECONDS));
        owner.create().creatingParentsIfNeeded().forPath(base);
        owner.create().withACL(ZooDefs.Ids.CREATOR_ALL_ACL).forPath(base + "/secret", bytes("s"));
        try {
            checkDigestAcl(owner);
        } finally {
            // Open the ACL again so the unauthenticated admin client can clean up.
            owner.setACL().withACL(ZooDefs.Ids.OPEN_ACL_UNSAFE).forPath(base + "/secret");
        }
        CuratorFramework stranger = newClient();
        sync(stranger);  // on an ensemble: the ACL was set through another server
        assertArrayEquals(bytes("s"), stranger.getData().forPath(base + "/secret"));
    }

    private void checkDigestAcl(CuratorFramework owner) throws Exception {
        List<ACL> acl = owner.getACL().forPath(base + "/secret");
        assertEquals(1, acl.size());
        assertEquals("digest", acl.get(0).getId().getScheme());
        assertTrue(acl.get(0).getId().getId().startsWith("alice:"), acl.toString());
        assertEquals(ZooDefs.Perms.ALL, acl.get(0).getPerms());

        CuratorFramework stranger = newClient();
        sync(stranger);  // on an ensemble: the node was created through another server
        assertThrows(KeeperException.NoAuthException.class, () -> stranger.getData().forPath(base + "/secret"));
        assertThrows(KeeperException.NoAuthException.class, () -> stranger.setData().forPath(base + "/secret", bytes("x")));

        CuratorFramework friend = CuratorFrameworkFactory.builder().connectString(connectString())
                .retryPolicy(new RetryNTimes(3, 250)).authorization("digest", bytes("alice:secret")).build();
        closeLater(friend);
        friend.start();
        assertTrue(friend.blockUntilConnected((int) WAIT_S, TimeUnit.SECONDS));
        sync(friend);
        assertArrayEquals(bytes("s"), friend.getData().forPath(base + "/secret"));
    }

    /** Needs createTTL (op 21) and the server's TTL reaper. */
    @CuratorTest
    void ttlNodes() throws Exception {
        CuratorFramework c = newClient();
        c.create().creatingParentsIfNeeded().forPath(base);
        Stat st = new Stat();
        c.create().withTtl(500).storingStatIn(st).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(base + "/ttl", bytes("t"));
        assertTrue(st.getCzxid() > 0, "create2-style stat for a TTL node");
        assertEquals(1, c.checkExists().forPath(base).getNumChildren(), "TTL node is a child of base");
        assertArrayEquals(bytes("t"), c.getData().forPath(base + "/ttl"));
        await("TTL node deleted by the server after its TTL", 30, () -> !exists(base + "/ttl"));
    }

    /**
     * ZooKeeper keeps the container/TTL marker in the persisted ephemeralOwner
     * field but reports 0 to clients (DataNode.copyStat); only a real
     * ephemeral node shows its session id.
     */
    @CuratorTest
    void containerAndTtlNodesReportNoEphemeralOwner() throws Exception {
        CuratorFramework c = newClient();
        c.create().creatingParentsIfNeeded().forPath(base);
        Stat created = new Stat();
        c.create().storingStatIn(created).withMode(CreateMode.CONTAINER).forPath(base + "/container");
        assertEquals(0, created.getEphemeralOwner(), "create2 stat of a container");
        c.create().creatingParentContainersIfNeeded().forPath(base + "/parent/leaf");
        Stat ttlCreated = new Stat();
        c.create().withTtl(60_000).storingStatIn(ttlCreated).withMode(CreateMode.PERSISTENT_WITH_TTL)
                .forPath(base + "/ttl");
        assertEquals(0, ttlCreated.getEphemeralOwner(), "create2 stat of a TTL node");
        for (String p : List.of(base + "/container", base + "/parent", base + "/ttl")) {
            assertEquals(0, c.checkExists().forPath(p).getEphemeralOwner(), "exists() stat of " + p);
            Stat got = new Stat();
            c.getData().storingStatIn(got).forPath(p);
            assertEquals(0, got.getEphemeralOwner(), "getData() stat of " + p);
        }
        Stat eph = new Stat();
        c.create().storingStatIn(eph).withMode(CreateMode.EPHEMERAL).forPath(base + "/eph");
        assertEquals(c.getZookeeperClient().getZooKeeper().getSessionId(), eph.getEphemeralOwner(), "real ephemeral");
    }

    /**
     * The dynamic configuration: Apache ZooKeeper (one-member ensemble,
     * reconfigEnabled=true) serves server.1=...;127.0.0.1:PORT in
     * /zookeeper/config and the ensemble tracker adopts it.
     */
    @CuratorTest
    void ensembleConfigListsThisServer() throws Exception {
        CuratorFramework c = newClient();
        Properties props = new Properties();
        props.load(new ByteArrayInputStream(c.getConfig().forEnsemble()));
        assertTrue(props.stringPropertyNames().stream().anyMatch(k -> k.startsWith("server.")),
                "server.N lines in /zookeeper/config: " + props);
        assertNotNull(props.getProperty("version"), "version line in /zookeeper/config: " + props);
        assertEquals(connectString(), EnsembleTracker.configToConnectionString(new QuorumMaj(props)));
        await("tracker adopted the config", () -> c.getCurrentConfig() != null
                && !c.getCurrentConfig().getAllMembers().isEmpty());
        assertEquals(connectString(), c.getZookeeperClient().getCurrentConnectionString());
    }

    @CuratorTest
    void ensembleTrackerReadsConfigWithoutBreakingTheClient() throws Exception {
        CuratorFramework c = newClient();  // ensembleTracker is on by default
        byte[] viaGetConfig = c.getConfig().forEnsemble();
        assertNotNull(viaGetConfig, "getConfig() answered");
        assertArrayEquals(admin().getData().forPath("/zookeeper/config"), viaGetConfig,
                "getConfig() equals getData(/zookeeper/config)");

        Properties props = new Properties();
        props.load(new ByteArrayInputStream(viaGetConfig));
        boolean hasServers = props.stringPropertyNames().stream().anyMatch(k -> k.startsWith("server."));
        if (hasServers) {
            // The tracker will point the client at the client addresses listed
            // in the config; they must be the address we connected to.
            QuorumVerifier qv = new QuorumMaj(props);
            String fromConfig = EnsembleTracker.configToConnectionString(qv);
            assertEquals(connectString(), fromConfig, "client addresses in /zookeeper/config: " + props);
            await("tracker picked up the config", () -> c.getCurrentConfig() != null
                    && !c.getCurrentConfig().getAllMembers().isEmpty());
        }
        Thread.sleep(500);  // let the tracker apply whatever it read
        assertEquals(connectString(), c.getZookeeperClient().getCurrentConnectionString(), "connection string");
        assertTrue(c.getZookeeperClient().isConnected(), "still connected");
        c.create().creatingParentsIfNeeded().forPath(base + "/after", bytes("ok"));
        assertArrayEquals(bytes("ok"), c.getData().forPath(base + "/after"));

        // The config node is read-only for clients.
        assertThrows(KeeperException.class, () -> c.setData().forPath("/zookeeper/config", bytes("x")));
        // And a client with the tracker off works the same.
        CuratorFramework plain = CuratorFrameworkFactory.builder().connectString(connectString())
                .retryPolicy(new RetryNTimes(3, 250)).ensembleTracker(false).build();
        closeLater(plain);
        plain.start();
        assertTrue(plain.blockUntilConnected((int) WAIT_S, TimeUnit.SECONDS));
        assertArrayEquals(bytes("ok"), plain.getData().forPath(base + "/after"));
    }
}
