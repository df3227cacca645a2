package dev.ferrokeeper.compat.curator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.barriers.DistributedBarrier;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.nodes.PersistentNode;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.SharedCountListener;
import org.apache.curator.framework.recipes.shared.SharedCountReader;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.data.Stat;

/** Barriers, shared counters, atomic longs, a self-healing ephemeral node. */
class CoordinationTest extends CompatBase {

    @CuratorTest
    void doubleBarrierFourMembers() throws Exception {
        final int members = 4;
        String path = base + "/double";
        List<CuratorFramework> clients = newClients(members);
        AtomicInteger arrived = new AtomicInteger();
        AtomicInteger leaving = new AtomicInteger();
        List<Integer> arrivedSeenOnEnter = new CopyOnWriteArrayList<>();
        List<Integer> leavingSeenOnLeave = new CopyOnWriteArrayList<>();
        List<Callable<Boolean>> tasks = new ArrayList<>();
        for (int i = 0; i < members; i++) {
            CuratorFramework c = clients.get(i);
            final int delayMs = 150 * i;  // staggered arrivals
            tasks.add(() -> {
                DistributedDoubleBarrier b = new DistributedDoubleBarrier(c, path, members);
                Thread.sleep(delayMs);
                arrived.incrementAndGet();
                assertTrue(b.enter(WAIT_S, TimeUnit.SECONDS), "enter within " + WAIT_S + "s");
                arrivedSeenOnEnter.add(arrived.get());
                Thread.sleep(delayMs);
                leaving.incrementAndGet();
                assertTrue(b.leave(WAIT_S, TimeUnit.SECONDS), "leave within " + WAIT_S + "s");
                leavingSeenOnLeave.add(leaving.get());
                return true;
            });
        }
        runAll(tasks, 45);
        assertEquals(List.of(members, members, members, members), arrivedSeenOnEnter,
                "nobody passes enter() before all " + members + " arrived");
        assertEquals(List.of(members, members, members, members), leavingSeenOnLeave,
                "nobody passes leave() before all " + members + " are leaving");
        assertEquals(List.of(), children(path), "barrier znodes left behind");

        // Only three of four members arrive: enter() times out.
        String partial = base + "/partial";
        List<Callable<Boolean>> three = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            CuratorFramework c = clients.get(i);
            three.add(() -> new DistributedDoubleBarrier(c, partial, members).enter(700, TimeUnit.MILLISECONDS));
        }
        assertEquals(List.of(false, false, false), runAll(three, 30), "enter() with 3 of 4 members");
    }

    @CuratorTest
    void barrierBlocksUntilRemoved() throws Exception {
        String path = base + "/gate";
        CuratorFramework owner = newClient();
        DistributedBarrier gate = new DistributedBarrier(owner, path);
        gate.setBarrier();
        List<Future<Boolean>> waiters = new ArrayList<>();
        for (CuratorFramework c : newClients(3)) {
            waiters.add(pool().submit(() -> new DistributedBarrier(c, path).waitOnBarrier(WAIT_S, TimeUnit.SECONDS)));
        }
        Thread.sleep(300);
        for (Future<Boolean> w : waiters) {
            assertFalse(w.isDone(), "waiter passed a set barrier");
        }
        gate.removeBarrier();
        for (Future<Boolean> w : waiters) {
            assertTrue(w.get(WAIT_S, TimeUnit.SECONDS), "waiter released by removeBarrier");
        }
    }

    @CuratorTest
    void sharedCountVersionedUpdates() throws Exception {
        String path = base + "/count";
        CuratorFramework c1 = newClient();
        CuratorFramework c2 = newClient();
        SharedCount a = closeLater(new SharedCount(c1, path, 7));
        SharedCount b = closeLater(new SharedCount(c2, path, 99));  // seed ignored: node exists
        a.start();
        b.start();
        assertEquals(7, a.getCount());
        assertEquals(7, b.getCount(), "second instance reads the existing value, not its seed");
        List<Integer> seenByB = new CopyOnWriteArrayList<>();
        b.addListener(new SharedCountListener() {
            @Override
            public void countHasChanged(SharedCountReader sharedCount, int newCount) {
                seenByB.add(newCount);
            }

            @Override
            public void stateChanged(CuratorFramework client, ConnectionState newState) {
            }
        });

        VersionedValue<Integer> va = a.getVersionedValue();
        VersionedValue<Integer> staleB = b.getVersionedValue();
        assertEquals(va.getVersion(), staleB.getVersion());
        assertTrue(a.trySetCount(va, 8), "versioned update from the current version");
        assertEquals(8, a.getCount());
        await("b sees 8", () -> b.getCount() == 8);
        assertFalse(b.trySetCount(staleB, 100), "versioned update from a stale version must fail");
        assertEquals(8, b.getCount(), "a failed update leaves the value alone (and refreshes it)");
        VersionedValue<Integer> fresh = b.getVersionedValue();
        assertEquals(va.getVersion() + 1, fresh.getVersion(), "znode version after one update");
        assertTrue(b.trySetCount(fresh, 9));
        await("a sees 9", () -> a.getCount() == 9);
        await("b's listener saw the remote change to 8", () -> seenByB.contains(8));

        // Four clients increment with optimistic retries: no update is lost.
        List<SharedCount> counters = new ArrayList<>();
        for (CuratorFramework c : newClients(4)) {
            SharedCount sc = closeLater(new SharedCount(c, path, 0));
            sc.start();
            counters.add(sc);
        }
        AtomicInteger conflicts = new AtomicInteger();
        List<Callable<Integer>> tasks = new ArrayList<>();
        for (SharedCount sc : counters) {
            tasks.add(() -> {
                for (int i = 0; i < 10; i++) {
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
                    while (true) {
                        VersionedValue<Integer> v = sc.getVersionedValue();
                        if (sc.trySetCount(v, v.getValue() + 1)) {
                            break;
                        }
                        // Lost the race; the instance refreshes its value (read or watch).
                        conflicts.incrementAndGet();
                        assertTrue(System.nanoTime() < deadline, "increment kept conflicting for " + WAIT_S + "s");
                        Thread.sleep(2);
                    }
                }
                return 10;
            });
        }
        runAll(tasks, 45);
        await("all instances see 49", () -> counters.stream().allMatch(sc -> sc.getCount() == 49) && a.getCount() == 49);
        // The admin session may be on a server that has not applied the last update yet (reads
        // are sequentially consistent, not linearizable; seen on Apache's ensemble after a
        // leader kill): sync first, as a ZooKeeper client must before such a read.
        CountDownLatch synced = new CountDownLatch(1);
        admin().sync().inBackground((cl, ev) -> synced.countDown()).forPath(path);
        assertTrue(synced.await(WAIT_S, TimeUnit.SECONDS), "sync completes");
        Stat st = admin().checkExists().forPath(path);
        assertEquals(fresh.getVersion() + 1 + 40, st.getVersion(), "one znode write per successful update");
    }

    @CuratorTest
    void distributedAtomicLongIncrementsAddUp() throws Exception {
        String path = base + "/atomic";
        final int clientsN = 4;
        final int incs = 25;
        List<CuratorFramework> clients = newClients(clientsN);
        DistributedAtomicLong first = new DistributedAtomicLong(clients.get(0), path, new RetryNTimes(10, 10));
        assertTrue(first.initialize(1000L), "initialize a missing counter");
        assertFalse(first.initialize(5L), "initialize does not overwrite");
        AtomicValue<Long> cas = first.compareAndSet(1000L, 0L);
        assertTrue(cas.succeeded());
        assertEquals(1000L, cas.preValue());
        assertFalse(first.compareAndSet(1000L, 1L).succeeded(), "compareAndSet with a wrong expected value");

        AtomicInteger retriesNeeded = new AtomicInteger();
        List<Callable<Long>> tasks = new ArrayList<>();
        for (CuratorFramework c : clients) {
            tasks.add(() -> {
                DistributedAtomicLong n = new DistributedAtomicLong(c, path, new RetryNTimes(50, 5));
                long mine = 0;
                for (int i = 0; i < incs; i++) {
                    int attempts = 0;
                    AtomicValue<Long> r;
                    while (!(r = n.increment()).succeeded()) {
                        retriesNeeded.incrementAndGet();
                        assertTrue(++attempts < 50, "increment kept failing");
                    }
                    assertEquals(r.preValue() + 1, r.postValue());
                    mine++;
                }
                return mine;
            });
        }
        long done = runAll(tasks, 45).stream().mapToLong(Long::longValue).sum();
        assertEquals(clientsN * incs, done);
        AtomicValue<Long> v = first.get();
        assertTrue(v.succeeded());
        assertEquals((long) clientsN * incs, v.postValue(), "sum of all increments");
        assertEquals(-5L, first.add(-5L - v.postValue()).postValue(), "add a negative delta");
    }

    @CuratorTest
    void persistentEphemeralNodeIsRecreated() throws Exception {
        String path = base + "/members/node-1";
        CuratorFramework owner = newClient();
        PersistentNode node = closeLater(new PersistentNode(owner, CreateMode.EPHEMERAL, false, path, bytes("v1")));
        node.start();
        assertTrue(node.waitForInitialCreate(WAIT_S, TimeUnit.SECONDS), "initial create");
        Stat st = admin().checkExists().forPath(path);
        assertNotNull(st);
        assertEquals(owner.getZookeeperClient().getZooKeeper().getSessionId(), st.getEphemeralOwner());
        long firstCzxid = st.getCzxid();

        // Someone else deletes it: the recipe's watch fires and it comes back.
        admin().delete().forPath(path);
        await("node recreated", () -> {
            try {
                Stat s = admin().checkExists().forPath(path);
                return s != null && s.getCzxid() > firstCzxid;
            } catch (Exception e) {
                return false;
            }
        });
        assertArrayEquals(bytes("v1"), admin().getData().forPath(path));
        node.setData(bytes("v2"));
        await("data updated", () -> {
            try {
                return "v2".equals(str(admin().getData().forPath(path)));
            } catch (Exception e) {
                return false;
            }
        });
        node.close();
        assertEquals(null, admin().checkExists().forPath(path), "deleted on close");
    }
}
