package dev.ferrokeeper.compat.curator;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.Closeable;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.KeeperException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.TestInfo;

/**
 * Common plumbing: the server's connect string, Curator clients that are
 * closed after each test, a per-test base path that is deleted afterwards,
 * a thread pool, and bounded waiting helpers.
 *
 * <p>The connect string comes from the system property {@code zk.connect}
 * (set by the harness: {@code -Dzk.connect=127.0.0.1:PORT}) or the
 * environment variable {@code ZK_CONNECT}. Without either every test fails:
 * this suite never starts a server of its own. It may list several servers
 * (the rolling-curator suite: a 3-server ensemble); then the clients of one
 * test are spread over them, and a check of what another client wrote reads
 * through {@link #sync} first (see there).
 */
public abstract class CompatBase {
    /** Upper bound for any single wait inside a test (the test itself has 60 s). */
    protected static final long WAIT_S = 20;

    protected static final String ROOT = "/curator-compat";

    private final Deque<Closeable> closeables = new ArrayDeque<>();
    private final List<CuratorFramework> clients = new ArrayList<>();
    private ExecutorService pool;
    private CuratorFramework admin;
    /** This test's own base path, e.g. /curator-compat/LockTest.mutexCounter. */
    protected String base;

    protected static String connectString() {
        String cs = System.getProperty("zk.connect");
        if (cs == null || cs.isBlank()) {
            cs = System.getenv("ZK_CONNECT");
        }
        if (cs == null || cs.isBlank()) {
            fail("no server: set -Dzk.connect=HOST:PORT (or ZK_CONNECT)");
        }
        return cs.trim();
    }

    @BeforeEach
    void setUpBase(TestInfo info) throws Exception {
        String method = info.getTestMethod().map(m -> m.getName()).orElse("test");
        base = ROOT + "/" + getClass().getSimpleName() + "." + method;
        admin = newClient();
        // ROOT is made a persistent node before any test runs. Left to the tests, the first
        // recipe that needs it creates it as a container (creatingParentContainersIfNeeded),
        // and the server's container reaper deletes an empty container at any moment: seen
        // on Apache ZooKeeper, a test's creatingParentsIfNeeded found ROOT, the reaper
        // deleted it (the previous test had just removed its base), and the create of the
        // test's base failed with NoNode.
        try {
            admin.create().forPath(ROOT);
        } catch (KeeperException.NodeExistsException e) {
            // made by an earlier test
        }
        if (admin.checkExists().forPath(base) != null) {
            admin.delete().deletingChildrenIfNeeded().forPath(base);
        }
    }

    @AfterEach
    void tearDownBase() throws Exception {
        while (!closeables.isEmpty()) {
            closeQuietly(closeables.pop());
        }
        if (pool != null) {
            pool.shutdownNow();
            pool.awaitTermination(10, TimeUnit.SECONDS);
        }
        try {
            if (admin != null && admin.checkExists().forPath(base) != null) {
                admin.delete().deletingChildrenIfNeeded().forPath(base);
            }
        } finally {
            for (CuratorFramework c : clients) {
                closeQuietly(c);
            }
        }
    }

    /** A started and connected Curator client, closed after the test. */
    protected CuratorFramework newClient() throws InterruptedException {
        CuratorFramework c = CuratorFrameworkFactory.builder()
                .connectString(connectString())
                .sessionTimeoutMs(15_000)
                .connectionTimeoutMs(10_000)
                .waitForShutdownTimeoutMs(5_000)
                .retryPolicy(new RetryNTimes(3, 250))
                .build();
        clients.add(c);
        c.start();
        assertTrue(c.blockUntilConnected((int) WAIT_S, TimeUnit.SECONDS),
                "client did not connect to " + connectString() + " within " + WAIT_S + "s");
        return c;
    }

    protected List<CuratorFramework> newClients(int n) throws InterruptedException {
        List<CuratorFramework> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(newClient());
        }
        return out;
    }

    /**
     * The client used for set-up, checks and clean-up, {@link #sync synced}
     * first, so its reads see every write acknowledged to any client before.
     */
    protected CuratorFramework admin() {
        try {
            sync(admin);
        } catch (Exception e) {
            throw new AssertionError("sync of the admin client failed", e);
        }
        return admin;
    }

    /**
     * ZooKeeper's sync: when it returns, the server the client is connected
     * to has applied every write committed before. On an ensemble a client on
     * one server may not yet see a write another client on another server was
     * just told succeeded: ZooKeeper guarantees each client's own order, not
     * simultaneous views ("sync, then read" is its answer). Measured on
     * 3-server ensembles, a read right after another client's acknowledged
     * create missed it in about 1 of 12 tries on Apache ZooKeeper 3.9.5 (write
     * on a follower, read on the leader) and 1 of 7 on ferrokeeper (read on a
     * follower). On a single server this changes nothing.
     */
    protected static void sync(CuratorFramework c) throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        AtomicInteger rc = new AtomicInteger();
        c.getZookeeperClient().getZooKeeper().sync("/", (code, path, ctx) -> {
            rc.set(code);
            done.countDown();
        }, null);
        if (!done.await(WAIT_S, TimeUnit.SECONDS)) {
            fail("sync did not complete within " + WAIT_S + "s");
        }
        if (rc.get() != 0) {
            throw KeeperException.create(KeeperException.Code.get(rc.get()), "/");
        }
    }

    /** Registers a recipe (or anything closeable) to be closed after the test, before the clients. */
    protected <T extends Closeable> T closeLater(T c) {
        closeables.push(c);
        return c;
    }

    protected synchronized ExecutorService pool() {
        if (pool == null) {
            pool = Executors.newCachedThreadPool(r -> {
                Thread t = new Thread(r, "compat-worker");
                t.setDaemon(true);
                return t;
            });
        }
        return pool;
    }

    /** Runs the tasks concurrently and returns their results; fails if one throws or they take too long. */
    protected <T> List<T> runAll(List<Callable<T>> tasks, long timeoutS) throws Exception {
        List<Future<T>> futures = new ArrayList<>();
        for (Callable<T> t : tasks) {
            futures.add(pool().submit(t));
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutS);
        List<T> out = new ArrayList<>();
        for (Future<T> f : futures) {
            long left = deadline - System.nanoTime();
            try {
                out.add(f.get(Math.max(left, 0), TimeUnit.NANOSECONDS));
            } catch (TimeoutException e) {
                fail("concurrent tasks did not finish within " + timeoutS + "s");
            } catch (java.util.concurrent.ExecutionException e) {
                Throwable cause = e.getCause();
                if (cause instanceof Exception) {
                    throw (Exception) cause;
                }
                if (cause instanceof Error) {
                    throw (Error) cause;
                }
                throw e;
            }
        }
        return out;
    }

    /** Polls cond every 20 ms for up to WAIT_S seconds; fails with msg if it never holds. */
    protected static void await(String msg, BooleanSupplier cond) throws InterruptedException {
        await(msg, WAIT_S, cond);
    }

    protected static void await(String msg, long seconds, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("timed out after " + seconds + "s waiting for: " + msg);
            }
            Thread.sleep(20);
        }
    }

    /**
     * The children of path, or an empty list if path does not exist. Recipe
     * parents are containers; Apache ZooKeeper deletes empty ones within a
     * second or two (the harness sets znode.container.checkIntervalMs=1000).
     */
    protected List<String> children(String path) throws Exception {
        try {
            return admin().getChildren().forPath(path);
        } catch (org.apache.zookeeper.KeeperException.NoNodeException e) {
            return List.of();
        }
    }

    protected static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    protected static String str(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    protected static void closeQuietly(Closeable c) {
        try {
            c.close();
        } catch (Exception | AssertionError e) {
            // best effort: a recipe whose client is already closed may complain
        }
    }
}
