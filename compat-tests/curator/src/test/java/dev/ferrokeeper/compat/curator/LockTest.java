package dev.ferrokeeper.compat.curator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.zookeeper.data.Stat;

/** Distributed locks: mutex, read/write lock, semaphore. */
class LockTest extends CompatBase {

    private static byte[] intBytes(int v) {
        return ByteBuffer.allocate(4).putInt(v).array();
    }

    private static int readInt(byte[] b) {
        return ByteBuffer.wrap(b).getInt();
    }

    @CuratorTest
    void mutexEightClientsIncrementSharedCounter() throws Exception {
        final int clientsN = 8;
        final int rounds = 25;
        String lockPath = base + "/lock";
        String counter = base + "/counter";
        admin().create().creatingParentsIfNeeded().forPath(counter, intBytes(0));
        List<CuratorFramework> clients = newClients(clientsN);
        AtomicInteger holders = new AtomicInteger();
        AtomicInteger maxHolders = new AtomicInteger();
        List<Callable<Integer>> tasks = new ArrayList<>();
        for (CuratorFramework c : clients) {
            tasks.add(() -> {
                InterProcessMutex mutex = new InterProcessMutex(c, lockPath);
                for (int i = 0; i < rounds; i++) {
                    assertTrue(mutex.acquire(WAIT_S, TimeUnit.SECONDS), "lock acquired within " + WAIT_S + "s");
                    try {
                        int now = holders.incrementAndGet();
                        maxHolders.accumulateAndGet(now, Math::max);
                        assertTrue(mutex.isAcquiredInThisProcess());
                        Stat stat = new Stat();
                        int v = readInt(c.getData().storingStatIn(stat).forPath(counter));
                        // With the lock held nobody else writes: the versioned write never conflicts.
                        c.setData().withVersion(stat.getVersion()).forPath(counter, intBytes(v + 1));
                        holders.decrementAndGet();
                    } finally {
                        mutex.release();
                    }
                }
                return rounds;
            });
        }
        runAll(tasks, 50);
        Stat stat = new Stat();
        assertEquals(clientsN * rounds, readInt(admin().getData().storingStatIn(stat).forPath(counter)), "counter");
        assertEquals(clientsN * rounds, stat.getVersion(), "counter version = number of writes");
        assertEquals(1, maxHolders.get(), "concurrent lock holders");
        assertEquals(List.of(), children(lockPath), "lock znodes left behind");
    }

    @CuratorTest
    void mutexIsReentrantAndExclusive() throws Exception {
        String lockPath = base + "/lock";
        CuratorFramework a = newClient();
        CuratorFramework b = newClient();
        InterProcessMutex ma = new InterProcessMutex(a, lockPath);
        InterProcessMutex mb = new InterProcessMutex(b, lockPath);
        assertTrue(ma.acquire(WAIT_S, TimeUnit.SECONDS));
        assertTrue(ma.acquire(WAIT_S, TimeUnit.SECONDS), "re-entrant acquire");
        assertEquals(1, children(lockPath).size(), "one lock node for a re-entrant holder");
        assertFalse(pool().submit(() -> mb.acquire(300, TimeUnit.MILLISECONDS)).get(WAIT_S, TimeUnit.SECONDS),
                "second client must not get the lock");
        ma.release();
        assertFalse(pool().submit(() -> mb.acquire(300, TimeUnit.MILLISECONDS)).get(WAIT_S, TimeUnit.SECONDS),
                "still held after one of two releases");
        ma.release();
        assertTrue(pool().submit(() -> {
            boolean got = mb.acquire(WAIT_S, TimeUnit.SECONDS);
            if (got) {
                mb.release();
            }
            return got;
        }).get(WAIT_S + 5, TimeUnit.SECONDS), "second client gets the lock after release");
        // The lock's znode is ephemeral: a holder whose session closes loses it.
        assertTrue(ma.acquire(WAIT_S, TimeUnit.SECONDS));
        a.close();
        assertTrue(pool().submit(() -> {
            boolean got = mb.acquire(WAIT_S, TimeUnit.SECONDS);
            if (got) {
                mb.release();
            }
            return got;
        }).get(WAIT_S + 5, TimeUnit.SECONDS), "lock freed by the holder's session close");
    }

    @CuratorTest
    void readWriteLockReadersShareWriterExcludes() throws Exception {
        String lockPath = base + "/rw";
        final int readersN = 3;
        List<CuratorFramework> clients = newClients(readersN + 2);
        InterProcessReadWriteLock writerLock = new InterProcessReadWriteLock(clients.get(readersN), lockPath);
        InterProcessReadWriteLock otherWriter = new InterProcessReadWriteLock(clients.get(readersN + 1), lockPath);

        // Phase 1: three readers hold the read lock at the same time; a writer cannot get in.
        CyclicBarrier allReading = new CyclicBarrier(readersN + 1);
        CountDownLatch releaseReaders = new CountDownLatch(1);
        AtomicInteger readers = new AtomicInteger();
        AtomicInteger maxReaders = new AtomicInteger();
        List<java.util.concurrent.Future<Boolean>> readerTasks = new ArrayList<>();
        for (int i = 0; i < readersN; i++) {
            InterProcessReadWriteLock rw = new InterProcessReadWriteLock(clients.get(i), lockPath);
            readerTasks.add(pool().submit(() -> {
                if (!rw.readLock().acquire(WAIT_S, TimeUnit.SECONDS)) {
                    return false;
                }
                try {
                    maxReaders.accumulateAndGet(readers.incrementAndGet(), Math::max);
                    allReading.await(WAIT_S, TimeUnit.SECONDS);
                    releaseReaders.await(WAIT_S, TimeUnit.SECONDS);
                    readers.decrementAndGet();
                } finally {
                    rw.readLock().release();
                }
                return true;
            }));
        }
        allReading.await(WAIT_S, TimeUnit.SECONDS);
        assertEquals(readersN, maxReaders.get(), "readers holding the read lock together");
        assertFalse(pool().submit(() -> writerLock.writeLock().acquire(300, TimeUnit.MILLISECONDS))
                .get(WAIT_S, TimeUnit.SECONDS), "writer must wait while readers hold the lock");

        // Phase 2: readers leave, the writer gets in, and then excludes readers and other writers.
        releaseReaders.countDown();
        for (java.util.concurrent.Future<Boolean> f : readerTasks) {
            assertTrue(f.get(WAIT_S, TimeUnit.SECONDS), "reader got the read lock");
        }
        CountDownLatch writerHolds = new CountDownLatch(1);
        CountDownLatch writerRelease = new CountDownLatch(1);
        java.util.concurrent.Future<Boolean> writer = pool().submit(() -> {
            if (!writerLock.writeLock().acquire(WAIT_S, TimeUnit.SECONDS)) {
                return false;
            }
            try {
                // A write-lock holder may also take the read lock (downgrade).
                assertTrue(writerLock.readLock().acquire(WAIT_S, TimeUnit.SECONDS), "writer takes read lock too");
                writerLock.readLock().release();
                writerHolds.countDown();
                writerRelease.await(WAIT_S, TimeUnit.SECONDS);
            } finally {
                writerLock.writeLock().release();
            }
            return true;
        });
        assertTrue(writerHolds.await(WAIT_S, TimeUnit.SECONDS), "writer got the write lock after readers left");
        InterProcessReadWriteLock lateReader = new InterProcessReadWriteLock(clients.get(0), lockPath);
        assertFalse(pool().submit(() -> lateReader.readLock().acquire(300, TimeUnit.MILLISECONDS))
                .get(WAIT_S, TimeUnit.SECONDS), "reader must wait while a writer holds the lock");
        assertFalse(pool().submit(() -> otherWriter.writeLock().acquire(300, TimeUnit.MILLISECONDS))
                .get(WAIT_S, TimeUnit.SECONDS), "second writer must wait");
        writerRelease.countDown();
        assertTrue(writer.get(WAIT_S, TimeUnit.SECONDS));
        assertTrue(pool().submit(() -> {
            boolean got = lateReader.readLock().acquire(WAIT_S, TimeUnit.SECONDS);
            if (got) {
                lateReader.readLock().release();
            }
            return got;
        }).get(WAIT_S + 5, TimeUnit.SECONDS), "reader gets in after the writer left");
        assertEquals(List.of(), children(lockPath), "lock znodes left behind");
    }

    @CuratorTest
    void semaphoreThreeLeasesEightClients() throws Exception {
        String semPath = base + "/sem";
        final int leases = 3;
        final int clientsN = 8;
        final int rounds = 4;
        List<CuratorFramework> clients = newClients(clientsN);

        // All leases taken: a fourth acquirer gets nothing.
        List<InterProcessSemaphoreV2> sems = new ArrayList<>();
        for (CuratorFramework c : clients) {
            sems.add(new InterProcessSemaphoreV2(c, semPath, leases));
        }
        List<Lease> held = new ArrayList<>();
        for (int i = 0; i < leases; i++) {
            Lease l = sems.get(i).acquire(WAIT_S, TimeUnit.SECONDS);
            assertNotNull(l, "lease " + i);
            held.add(l);
        }
        assertNull(sems.get(leases).acquire(300, TimeUnit.MILLISECONDS), "no 4th lease while 3 are held");
        sync(clients.get(0));  // leases 1 and 2 were taken through other clients (servers)
        assertEquals(leases, sems.get(0).getParticipantNodes().size(), "lease holders");
        sems.get(0).returnLease(held.remove(0));
        Lease fourth = sems.get(leases).acquire(WAIT_S, TimeUnit.SECONDS);
        assertNotNull(fourth, "a lease after one was returned");
        sems.get(leases).returnLease(fourth);
        for (int i = 0; i < held.size(); i++) {
            sems.get(i + 1).returnLease(held.get(i));
        }

        // Contention: eight clients, never more than three holders.
        AtomicInteger holders = new AtomicInteger();
        AtomicInteger maxHolders = new AtomicInteger();
        AtomicInteger grants = new AtomicInteger();
        List<Callable<Integer>> tasks = new ArrayList<>();
        for (InterProcessSemaphoreV2 sem : sems) {
            tasks.add(() -> {
                for (int i = 0; i < rounds; i++) {
                    Lease l = sem.acquire(WAIT_S, TimeUnit.SECONDS);
                    assertNotNull(l, "lease within " + WAIT_S + "s");
                    try {
                        maxHolders.accumulateAndGet(holders.incrementAndGet(), Math::max);
                        grants.incrementAndGet();
                        Thread.sleep(30);
                        holders.decrementAndGet();
                    } finally {
                        sem.returnLease(l);
                    }
                }
                return rounds;
            });
        }
        runAll(tasks, 50);
        assertEquals(clientsN * rounds, grants.get(), "leases granted");
        assertTrue(maxHolders.get() <= leases, "never more than " + leases + " holders, saw " + maxHolders.get());
        assertEquals(0, children(semPath + "/leases").size(), "lease nodes left behind");
    }
}
