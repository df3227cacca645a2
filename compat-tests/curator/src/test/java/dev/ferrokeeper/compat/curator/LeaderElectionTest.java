package dev.ferrokeeper.compat.curator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.leader.Participant;

/** Leader election: LeaderLatch and LeaderSelector, three contenders each. */
class LeaderElectionTest extends CompatBase {

    /** Leadership bookkeeping shared by the latch listeners. */
    private static final class Board {
        final boolean[] leader;
        final boolean[] retired;
        final List<Integer> elections = Collections.synchronizedList(new ArrayList<>());
        int maxConcurrent;

        Board(int n) {
            leader = new boolean[n];
            retired = new boolean[n];
        }

        synchronized void isLeader(int i) {
            leader[i] = true;
            elections.add(i);
            int now = 0;
            for (int j = 0; j < leader.length; j++) {
                if (leader[j] && !retired[j]) {
                    now++;
                }
            }
            maxConcurrent = Math.max(maxConcurrent, now);
        }

        synchronized void notLeader(int i) {
            leader[i] = false;
        }

        synchronized void retire(int i) {
            retired[i] = true;
        }

        synchronized int maxConcurrent() {
            return maxConcurrent;
        }
    }

    private static int onlyLeader(List<LeaderLatch> latches, List<Integer> among) {
        int found = -1;
        for (int i : among) {
            if (latches.get(i).hasLeadership()) {
                if (found >= 0) {
                    return -2;
                }
                found = i;
            }
        }
        return found;
    }

    @CuratorTest
    void leaderLatchThreeContenders() throws Exception {
        String path = base + "/latch";
        List<CuratorFramework> clients = newClients(3);
        List<LeaderLatch> latches = new ArrayList<>();
        Board board = new Board(3);
        for (int i = 0; i < 3; i++) {
            LeaderLatch latch = closeLater(new LeaderLatch(clients.get(i), path, "contender-" + i));
            final int idx = i;
            latch.addListener(new LeaderLatchListener() {
                @Override
                public void isLeader() {
                    board.isLeader(idx);
                }

                @Override
                public void notLeader() {
                    board.notLeader(idx);
                }
            });
            latches.add(latch);
        }
        for (LeaderLatch l : latches) {
            l.start();
        }
        List<Integer> alive = new ArrayList<>(List.of(0, 1, 2));

        // Round 1: exactly one of the three is leader, and all agree who.
        await("one leader among 3 latches", () -> onlyLeader(latches, alive) >= 0);
        Thread.sleep(500);  // let any spurious second election show up
        int first = onlyLeader(latches, alive);
        assertTrue(first >= 0, "exactly one latch must hold leadership (got " + first + ")");
        assertEquals(List.of(first), board.elections, "leadership changes after start");
        for (int i = 0; i < 3; i++) {
            LeaderLatch l = latches.get(i);
            await("latch sees the leader", () -> leaderId(l).equals("contender-" + first));
            sync(clients.get(i));  // the other contenders' znodes were created through other servers
            assertEquals(3, l.getParticipants().size(), "participants");
        }
        assertEquals(3, admin().getChildren().forPath(path).size(), "latch znodes");

        // Round 2: the leader's client goes away (session closed); exactly one
        // of the two others takes over, exactly once.
        board.retire(first);
        clients.get(first).close();
        alive.remove(Integer.valueOf(first));
        await("a new leader after the leader's session closed", () -> onlyLeader(latches, alive) >= 0);
        Thread.sleep(500);
        int second = onlyLeader(latches, alive);
        assertTrue(second >= 0 && second != first, "a different latch must lead (got " + second + ")");
        assertEquals(List.of(first, second), board.elections, "leadership changes after the session close");
        assertEquals(2, admin().getChildren().forPath(path).size(), "the closed session's latch znode is gone");

        // Round 3: the new leader closes its latch (client stays); the last one leads.
        board.retire(second);
        latches.get(second).close();
        alive.remove(Integer.valueOf(second));
        int third = alive.get(0);
        await("the last latch leads", () -> latches.get(third).hasLeadership());
        Thread.sleep(300);
        assertEquals(List.of(first, second, third), board.elections, "leadership changes, in order");
        assertEquals(new HashSet<>(List.of(0, 1, 2)), new HashSet<>(board.elections), "every contender led once");
        assertEquals(1, board.maxConcurrent(), "never more than one leader at a time");
        assertEquals("contender-" + third, leaderId(latches.get(third)));
        assertEquals(1, admin().getChildren().forPath(path).size(), "latch znodes left");
    }

    private static String leaderId(LeaderLatch l) {
        try {
            Participant p = l.getLeader();
            return p.isLeader() ? p.getId() : "";
        } catch (Exception e) {
            return "";
        }
    }

    @CuratorTest
    void leaderSelectorThreeContendersTakeTurns() throws Exception {
        String path = base + "/selector";
        final int turns = 9;
        List<CuratorFramework> clients = newClients(3);
        AtomicInteger holders = new AtomicInteger();
        AtomicInteger maxHolders = new AtomicInteger();
        List<String> order = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch allQueued = new CountDownLatch(1);
        CountDownLatch done = new CountDownLatch(turns);
        List<LeaderSelector> selectors = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            final String id = "selector-" + i;
            LeaderSelector s = new LeaderSelector(clients.get(i), path, new LeaderSelectorListenerAdapter() {
                @Override
                public void takeLeadership(CuratorFramework client) throws Exception {
                    int now = holders.incrementAndGet();
                    maxHolders.accumulateAndGet(now, Math::max);
                    try {
                        // The first leader waits until all three are queued, so
                        // the turn order is the queue order from then on.
                        allQueued.await(WAIT_S, TimeUnit.SECONDS);
                        if (order.size() < turns) {
                            order.add(id);
                        }
                        Thread.sleep(100);
                    } finally {
                        holders.decrementAndGet();
                        done.countDown();
                    }
                }
            });
            s.setId(id);
            s.autoRequeue();
            selectors.add(closeLater(s));
        }
        for (LeaderSelector s : selectors) {
            s.start();
        }
        await("3 participants queued", () -> {
            try {
                return selectors.get(0).getParticipants().size() == 3;
            } catch (Exception e) {
                return false;
            }
        });
        // Exactly one participant is marked leader in the queue.
        long leaders = selectors.get(0).getParticipants().stream().filter(Participant::isLeader).count();
        assertEquals(1, leaders, "participants marked leader");
        allQueued.countDown();
        assertTrue(done.await(WAIT_S, TimeUnit.SECONDS), "9 leadership turns within " + WAIT_S + "s; saw " + order);
        for (LeaderSelector s : selectors) {
            s.close();
        }
        List<String> seen = new ArrayList<>(order);
        assertEquals(turns, seen.size(), "turns recorded");
        assertEquals(1, maxHolders.get(), "never two leaders at once");
        // Round robin: every window of three consecutive turns has all three.
        for (int i = 0; i + 3 <= seen.size(); i++) {
            assertEquals(3, new HashSet<>(seen.subList(i, i + 3)).size(), "turns " + i + ".." + (i + 2) + " of " + seen);
        }
        for (int i = 3; i < seen.size(); i++) {
            assertEquals(seen.get(i - 3), seen.get(i), "turn order repeats: " + seen);
        }
        assertNotEquals(seen.get(0), seen.get(1));
        await("selector znodes gone after close", () -> {
            try {
                return children(path).isEmpty();
            } catch (Exception e) {
                return false;
            }
        });
    }
}
