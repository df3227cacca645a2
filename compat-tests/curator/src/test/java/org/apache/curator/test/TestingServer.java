package org.apache.curator.test;

import java.io.Closeable;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZKUtil;
import org.apache.zookeeper.ZooKeeper;
import org.opentest4j.TestAbortedException;

/**
 * Stand-in for curator-test's TestingServer, for running Curator's own
 * recipe tests (curator-recipes 5.9.0, classifier "tests") against the one
 * external server under test instead of an in-process ZooKeeper.
 *
 * <p>This class has the same name and public API as the original and sits in
 * this project's test classes, which come before the curator-test jar on
 * Surefire's class path, so Curator's {@code BaseClassForTests} builds this
 * one. It does not start anything: {@link #getConnectString()} is the
 * server from {@code -Dzk.connect}. Each instance starts from an empty tree
 * (everything but /zookeeper is deleted, authenticated as the harness's
 * super user), as a fresh TestingServer would. What an external server
 * cannot do (stop, restart, a second server on another port) aborts the
 * test, which JUnit reports as skipped with the reason.
 */
public class TestingServer implements Closeable {
    /** The harness configures this super digest on every server (see compat-tests/README.md). */
    private static final String SUPER_AUTH = "super:test";

    private final String connectString;
    private final int port;
    private File tempDirectory;

    public TestingServer() throws Exception {
        this(-1, null, true);
    }

    public TestingServer(boolean start) throws Exception {
        this(-1, null, start);
    }

    public TestingServer(int port) throws Exception {
        this(port, null, true);
    }

    public TestingServer(int port, boolean start) throws Exception {
        this(port, null, start);
    }

    public TestingServer(int port, File tempDirectory) throws Exception {
        this(port, tempDirectory, true);
    }

    public TestingServer(int port, File tempDirectory, boolean start) throws Exception {
        String cs = System.getProperty("zk.connect");
        if (cs == null || cs.isBlank()) {
            cs = System.getenv("ZK_CONNECT");
        }
        if (cs == null || cs.isBlank()) {
            throw new IllegalStateException("no external server: set -Dzk.connect=HOST:PORT");
        }
        this.connectString = cs.trim();
        this.port = Integer.parseInt(connectString.substring(connectString.lastIndexOf(':') + 1));
        if (port > 0 && port != this.port) {
            throw new TestAbortedException("needs a ZooKeeper server on port " + port
                    + "; only the external server under test is available");
        }
        this.tempDirectory = tempDirectory;
        wipe(connectString);
    }

    public TestingServer(InstanceSpec spec, boolean start) throws Exception {
        this(spec.getPort(), spec.getDataDirectory(), start);
    }

    /** Deletes every znode except /zookeeper, as a fresh server would have. */
    static void wipe(String connectString) throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(connectString, 15_000, e -> {
            if (e.getState() == Watcher.Event.KeeperState.SyncConnected) {
                connected.countDown();
            }
        });
        try {
            if (!connected.await(15, TimeUnit.SECONDS)) {
                throw new IOException("cannot connect to " + connectString);
            }
            zk.addAuthInfo("digest", SUPER_AUTH.getBytes(StandardCharsets.UTF_8));
            for (int attempt = 0; ; attempt++) {
                try {
                    List<String> children = zk.getChildren("/", false);
                    for (String child : children) {
                        if (!child.equals("zookeeper")) {
                            ZKUtil.deleteRecursive(zk, "/" + child);
                        }
                    }
                    return;
                } catch (KeeperException.NoNodeException | KeeperException.NotEmptyException e) {
                    // a lingering client of an earlier test raced us; try again
                    if (attempt >= 20) {
                        throw e;
                    }
                    Thread.sleep(100);
                }
            }
        } finally {
            zk.close();
        }
    }

    public int getPort() {
        return port;
    }

    public synchronized File getTempDirectory() {
        if (tempDirectory == null) {
            try {
                tempDirectory = Files.createTempDirectory("curator-external").toFile();
                tempDirectory.deleteOnExit();
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        }
        return tempDirectory;
    }

    public void start() throws Exception {
        // the external server is always running
    }

    public void stop() throws IOException {
        throw new TestAbortedException("stops the ZooKeeper server; not possible against the external server under test");
    }

    public void restart() throws Exception {
        throw new TestAbortedException("restarts the ZooKeeper server; not possible against the external server under test");
    }

    @Override
    public void close() throws IOException {
        // the harness owns the external server
    }

    public String getConnectString() {
        return connectString;
    }
}
