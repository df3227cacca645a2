package dev.ferrokeeper.compat.curator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.cache.TreeCache;
import org.apache.curator.framework.recipes.cache.TreeCacheEvent;

/**
 * Configuration management: caches that follow a subtree or one node.
 * CuratorCache uses a persistent (recursive) watch (addWatch); TreeCache uses
 * one-shot data and child watches.
 */
class ConfigCacheTest extends CompatBase {

    /** One cache event, rendered as "TYPE path=data". */
    private static String render(CuratorCacheListener.Type type, ChildData oldData, ChildData data) {
        ChildData d = data != null ? data : oldData;
        return type + " " + d.getPath() + (data != null ? "=" + str(data.getData()) : "");
    }

    private static String next(BlockingQueue<String> events) throws InterruptedException {
        String e = events.poll(WAIT_S, TimeUnit.SECONDS);
        assertNotNull(e, "no cache event within " + WAIT_S + "s");
        return e;
    }

    @CuratorTest
    void curatorCacheSeesEveryChangeUnderPathInOrder() throws Exception {
        CuratorFramework watcher = newClient();
        CuratorFramework writer = newClient();
        String cfg = base + "/config";
        writer.create().creatingParentsIfNeeded().forPath(cfg, bytes("root"));
        writer.create().forPath(cfg + "/existing", bytes("e0"));

        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        CountDownLatch initialized = new CountDownLatch(1);
        CuratorCache cache = closeLater(CuratorCache.build(watcher, cfg));
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forAll((type, oldData, data) -> events.add(render(type, oldData, data)))
                .forInitialized(initialized::countDown)
                .build());
        sync(watcher);  // on an ensemble: the writer's creates went through another server
        cache.start();
        assertTrue(initialized.await(WAIT_S, TimeUnit.SECONDS), "cache initialized");
        // The initial load reports what is already there (parent before child).
        assertEquals("NODE_CREATED " + cfg + "=root", next(events));
        assertEquals("NODE_CREATED " + cfg + "/existing=e0", next(events));

        // Step by step: every write shows up as its own event, in order.
        String[][] steps = {
            {"create", cfg + "/db", "host=a"},
            {"create", cfg + "/db/pool", "size=1"},
            {"set", cfg + "/db", "host=b"},
            {"set", cfg + "/db/pool", "size=2"},
            {"set", cfg, "root2"},
            {"create", cfg + "/db/pool/deep", "x"},
            {"delete", cfg + "/db/pool/deep", null},
            {"delete", cfg + "/existing", null},
            {"set", cfg + "/db", "host=c"},
        };
        for (String[] s : steps) {
            String expected;
            switch (s[0]) {
                case "create":
                    writer.create().forPath(s[1], bytes(s[2]));
                    expected = "NODE_CREATED " + s[1] + "=" + s[2];
                    break;
                case "set":
                    writer.setData().forPath(s[1], bytes(s[2]));
                    expected = "NODE_CHANGED " + s[1] + "=" + s[2];
                    break;
                default:
                    writer.delete().forPath(s[1]);
                    expected = "NODE_DELETED " + s[1];
            }
            assertEquals(expected, next(events), "event for " + s[0] + " " + s[1]);
        }
        assertEquals("host=c", str(cache.get(cfg + "/db").map(ChildData::getData).orElse(null)));
        assertEquals(3, cache.size(), "cached nodes: config, db, db/pool");

        // A burst of updates to one node: events may be coalesced, but the
        // versions seen only go up and the last one is the final write.
        List<Integer> versions = new ArrayList<>();
        CountDownLatch last = new CountDownLatch(1);
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forChanges((oldNode, node) -> {
                    if (node.getPath().equals(cfg + "/db/pool")) {
                        synchronized (versions) {
                            versions.add(node.getStat().getVersion());
                        }
                        if (str(node.getData()).equals("size=100")) {
                            last.countDown();
                        }
                    }
                })
                .build());
        for (int i = 3; i <= 100; i++) {
            writer.setData().forPath(cfg + "/db/pool", bytes("size=" + i));
        }
        assertTrue(last.await(WAIT_S, TimeUnit.SECONDS), "final burst value seen");
        synchronized (versions) {
            for (int i = 1; i < versions.size(); i++) {
                assertTrue(versions.get(i) > versions.get(i - 1), "versions strictly increase: " + versions);
            }
            assertEquals(99, versions.get(versions.size() - 1), "last version (size=2, then 98 burst writes)");
        }

        // Deleting the whole subtree: children before parents.
        writer.delete().deletingChildrenIfNeeded().forPath(cfg);
        List<String> deletes = new ArrayList<>();
        while (deletes.size() < 3) {
            String e = next(events);
            if (e.startsWith("NODE_DELETED")) {
                deletes.add(e);
            }
        }
        assertEquals(List.of("NODE_DELETED " + cfg + "/db/pool", "NODE_DELETED " + cfg + "/db",
                "NODE_DELETED " + cfg), deletes);
        await("cache empty", () -> cache.size() == 0);
    }

    @CuratorTest
    void singleNodeCacheSeesEveryChangeOfOneNodeInOrder() throws Exception {
        CuratorFramework watcher = newClient();
        CuratorFramework writer = newClient();
        String node = base + "/feature-flag";
        writer.create().creatingParentsIfNeeded().forPath(base + "/sibling", bytes("s"));

        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        CountDownLatch initialized = new CountDownLatch(1);
        CuratorCache cache = closeLater(CuratorCache.build(watcher, node, CuratorCache.Options.SINGLE_NODE_CACHE));
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forAll((type, oldData, data) -> events.add(render(type, oldData, data)))
                .forInitialized(initialized::countDown)
                .build());
        cache.start();
        assertTrue(initialized.await(WAIT_S, TimeUnit.SECONDS), "cache initialized");
        assertEquals(Optional.empty(), cache.get(node), "node does not exist yet");

        writer.create().forPath(node, bytes("off"));
        assertEquals("NODE_CREATED " + node + "=off", next(events));
        for (int i = 1; i <= 5; i++) {
            writer.setData().forPath(node, bytes("v" + i));
            assertEquals("NODE_CHANGED " + node + "=v" + i, next(events));
            assertEquals(i, cache.get(node).get().getStat().getVersion(), "cached version");
        }
        // A child of the node and a sibling are not reported by a single-node cache.
        writer.create().forPath(node + "/child", bytes("c"));
        writer.setData().forPath(base + "/sibling", bytes("s2"));
        writer.setData().forPath(node, bytes("on"));
        assertEquals("NODE_CHANGED " + node + "=on", next(events));
        writer.delete().deletingChildrenIfNeeded().forPath(node);
        assertEquals("NODE_DELETED " + node, next(events));
        writer.create().forPath(node, bytes("again"));
        assertEquals("NODE_CREATED " + node + "=again", next(events));
        assertEquals("again", str(cache.get(node).get().getData()));
        Thread.sleep(200);
        assertNull(events.poll(), "no further events");
        assertEquals(1, cache.size());
    }

    @CuratorTest
    void treeCacheWithOneShotWatches() throws Exception {
        CuratorFramework watcher = newClient();
        CuratorFramework writer = newClient();
        String cfg = base + "/tree";
        writer.create().creatingParentsIfNeeded().forPath(cfg, bytes("r"));

        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        TreeCache cache = closeLater(TreeCache.newBuilder(watcher, cfg).build());
        cache.getListenable().addListener((c, e) -> {
            if (e.getType() == TreeCacheEvent.Type.INITIALIZED) {
                events.add("INITIALIZED");
            } else if (e.getData() != null) {
                events.add(e.getType() + " " + e.getData().getPath()
                        + (e.getType() == TreeCacheEvent.Type.NODE_REMOVED ? "" : "=" + str(e.getData().getData())));
            }
        });
        sync(watcher);
        cache.start();
        assertEquals("NODE_ADDED " + cfg + "=r", next(events));
        assertEquals("INITIALIZED", next(events));
        writer.create().forPath(cfg + "/a", bytes("1"));
        assertEquals("NODE_ADDED " + cfg + "/a=1", next(events));
        writer.create().forPath(cfg + "/a/b", bytes("2"));
        assertEquals("NODE_ADDED " + cfg + "/a/b=2", next(events));
        writer.setData().forPath(cfg + "/a", bytes("1b"));
        assertEquals("NODE_UPDATED " + cfg + "/a=1b", next(events));
        writer.setData().forPath(cfg + "/a/b", bytes("2b"));
        assertEquals("NODE_UPDATED " + cfg + "/a/b=2b", next(events));
        writer.delete().forPath(cfg + "/a/b");
        assertEquals("NODE_REMOVED " + cfg + "/a/b", next(events));
        writer.delete().forPath(cfg + "/a");
        assertEquals("NODE_REMOVED " + cfg + "/a", next(events));
        assertEquals(0, cache.getCurrentChildren(cfg).size(), "no children left");
    }
}
