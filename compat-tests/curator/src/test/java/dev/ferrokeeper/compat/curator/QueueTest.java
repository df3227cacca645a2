package dev.ferrokeeper.compat.curator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.queue.DistributedIdQueue;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.state.ConnectionState;

/** Distributed queues: every item is delivered exactly once. */
class QueueTest extends CompatBase {

    private static final QueueSerializer<String> UTF8 = new QueueSerializer<>() {
        @Override
        public byte[] serialize(String item) {
            return item.getBytes(StandardCharsets.UTF_8);
        }

        @Override
        public String deserialize(byte[] bytes) {
            return new String(bytes, StandardCharsets.UTF_8);
        }
    };

    /** A consumer that records every item it is handed. */
    private static final class Recorder implements QueueConsumer<String> {
        final Map<String, AtomicInteger> seen;
        final List<String> order = Collections.synchronizedList(new ArrayList<>());

        Recorder(Map<String, AtomicInteger> seen) {
            this.seen = seen;
        }

        @Override
        public void consumeMessage(String message) {
            seen.computeIfAbsent(message, k -> new AtomicInteger()).incrementAndGet();
            order.add(message);
        }

        @Override
        public void stateChanged(CuratorFramework client, ConnectionState newState) {
        }
    }

    private static void assertExactlyOnce(Map<String, AtomicInteger> seen, List<String> expected) {
        Map<String, Integer> counts = new TreeMap<>();
        seen.forEach((k, v) -> counts.put(k, v.get()));
        Map<String, Integer> want = new TreeMap<>();
        expected.forEach(e -> want.put(e, 1));
        assertEquals(want, counts, "items delivered exactly once");
    }

    private static int total(Map<String, AtomicInteger> seen) {
        return seen.values().stream().mapToInt(AtomicInteger::get).sum();
    }

    @CuratorTest
    void distributedQueueSingleConsumerInOrder() throws Exception {
        String path = base + "/queue";
        CuratorFramework producerClient = newClient();
        CuratorFramework consumerClient = newClient();
        DistributedQueue<String> producer = closeLater(QueueBuilder.builder(producerClient, null, UTF8, path)
                .putInBackground(false).buildQueue());
        producer.start();
        List<String> items = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            String item = String.format("job-%03d", i);
            items.add(item);
            producer.put(item);
        }
        assertEquals(40, admin().getChildren().forPath(path).size(), "queued item znodes");

        Map<String, AtomicInteger> seen = new ConcurrentHashMap<>();
        Recorder rec = new Recorder(seen);
        DistributedQueue<String> consumer = closeLater(QueueBuilder.builder(consumerClient, rec, UTF8, path)
                .buildQueue());
        consumer.start();
        await("40 items consumed", () -> total(seen) >= 40);
        // Items put later while the consumer runs are delivered too.
        for (int i = 40; i < 50; i++) {
            String item = String.format("job-%03d", i);
            items.add(item);
            producer.put(item);
        }
        await("50 items consumed", () -> total(seen) >= 50);
        Thread.sleep(300);
        assertExactlyOnce(seen, items);
        assertEquals(items, new ArrayList<>(rec.order), "FIFO order for a single consumer");
        await("queue empty", () -> {
            try {
                return children(path).isEmpty();
            } catch (Exception e) {
                return false;
            }
        });
    }

    @CuratorTest
    void distributedQueueThreeConsumersTwoProducers() throws Exception {
        String path = base + "/queue";
        Map<String, AtomicInteger> seen = new ConcurrentHashMap<>();
        for (int i = 0; i < 3; i++) {
            DistributedQueue<String> q = closeLater(QueueBuilder.builder(newClient(), new Recorder(seen), UTF8, path)
                    .buildQueue());
            q.start();
        }
        List<String> items = Collections.synchronizedList(new ArrayList<>());
        List<java.util.concurrent.Callable<Integer>> producers = new ArrayList<>();
        for (int p = 0; p < 2; p++) {
            final int pid = p;
            DistributedQueue<String> producer = closeLater(QueueBuilder.builder(newClient(), null, UTF8, path)
                    .putInBackground(false).buildQueue());
            producer.start();
            producers.add(() -> {
                for (int i = 0; i < 60; i++) {
                    String item = "p" + pid + "-" + i;
                    producer.put(item);
                    items.add(item);
                }
                return 60;
            });
        }
        runAll(producers, 40);
        await("120 items consumed", () -> total(seen) >= 120);
        Thread.sleep(500);  // a duplicate delivery would show up here
        assertExactlyOnce(seen, items);
    }

    @CuratorTest
    void distributedIdQueueRemoveByIdAndDeliverOnce() throws Exception {
        String path = base + "/idqueue";
        DistributedIdQueue<String> producer = closeLater(QueueBuilder.builder(newClient(), null, UTF8, path)
                .putInBackground(false).buildIdQueue());
        producer.start();
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < 30; i++) {
            producer.put("payload-" + i, "id-" + i);
            expected.add("payload-" + i);
        }
        // Two items with the same id: remove takes both.
        producer.put("dup-a", "id-dup");
        producer.put("dup-b", "id-dup");
        assertEquals(1, producer.remove("id-5"), "removed by id");
        assertEquals(1, producer.remove("id-17"), "removed by id");
        assertEquals(2, producer.remove("id-dup"), "both items with the same id removed");
        assertEquals(0, producer.remove("id-5"), "already removed");
        assertEquals(0, producer.remove("no-such-id"), "unknown id");
        expected.remove("payload-5");
        expected.remove("payload-17");
        assertEquals(28, admin().getChildren().forPath(path).size(), "item znodes after removals");

        // Two consumers with a lock path: items are removed only after they were consumed.
        Map<String, AtomicInteger> seen = new ConcurrentHashMap<>();
        for (int i = 0; i < 2; i++) {
            DistributedIdQueue<String> q = closeLater(QueueBuilder.builder(newClient(), new Recorder(seen), UTF8, path)
                    .lockPath(base + "/idqueue-locks").buildIdQueue());
            q.start();
        }
        await("28 items consumed", () -> total(seen) >= 28);
        Thread.sleep(500);
        assertExactlyOnce(seen, expected);
        await("queue empty", () -> {
            try {
                return children(path).isEmpty();
            } catch (Exception e) {
                return false;
            }
        });
        assertTrue(children(base + "/idqueue-locks").isEmpty(), "no item locks left");
    }
}
