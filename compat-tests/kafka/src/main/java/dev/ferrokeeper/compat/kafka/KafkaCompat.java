package dev.ferrokeeper.compat.kafka;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.errors.ElectionNotNeededException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.log4j.PropertyConfigurator;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

/**
 * The kafka compat suite's driver: two Apache Kafka 3.9 brokers in ZooKeeper
 * mode against one ZooKeeper-protocol server.
 *
 * <pre>
 * java -cp target/classes:$(cat classpath.txt) dev.ferrokeeper.compat.kafka.KafkaCompat \
 *   --zk 127.0.0.1:PORT --work-dir DIR --classpath-file classpath.txt --results DIR/results.json
 * </pre>
 *
 * The brokers are child processes ({@code java -cp <classpath> kafka.Kafka
 * server.properties}) with ids 0 and 1, listening on 127.0.0.1 at
 * zkport+1000 and zkport+1001, chroot {@code /kafka}, data and logs under the
 * work dir (one log file per broker start). The cases run in order; each is
 * one test, passed or failed. A case whose prerequisite failed fails too
 * ("blocked by ..."), so every run reports all cases. Znodes are read with
 * this process's own ZooKeeper client (without the chroot); the Kafka side
 * with kafka-clients (admin, producer, consumer). Results are written after
 * every case; exit status 0 = all passed, 1 = some failed, 2 = the driver
 * could not run (bad arguments, no ZooKeeper connection).
 */
public final class KafkaCompat {
    static final String CHROOT = "/kafka";
    static final String TOPIC = "compat-topic";
    static final int PARTITIONS = 3;
    static final short REPLICATION = 2;
    static final int MESSAGES = 10_000;
    static final int MESSAGES_AFTER_FAILOVER = 1_000;
    static final String GROUP = "compat-group";
    static final String TOPIC2 = "compat-topic-2";
    static final String ACL_TOPIC = "compat-acl-topic";
    static final int SESSION_TIMEOUT_MS = 6_000;
    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** A check that did not hold (as opposed to an unexpected exception). */
    static final class CheckFailed extends Exception {
        CheckFailed(String msg) {
            super(msg);
        }
    }

    interface Body {
        String run() throws Exception;
    }

    interface Probe<T> {
        /** Returns the awaited value, or null (and a description of the state in {@code note}). */
        T get(StringBuilder note) throws Exception;
    }

    final String zkHost;
    final Path work;
    final String classpath;
    final Path resultsFile;
    final int zkPort;
    final Broker[] brokers = new Broker[2];
    final List<ObjectNode> cases = new ArrayList<>();
    final Map<String, String> status = new HashMap<>();
    final ObjectNode facts = JSON.createObjectNode();
    ZooKeeper zk;

    // State carried from case to case.
    long controllerEpoch = -1;
    Integer killedId;
    long killedCzxid = -1;
    Integer survivorId;
    final Map<Integer, List<Integer>> assignment = new TreeMap<>();
    final Set<String> produced = Collections.synchronizedSet(new HashSet<>());
    final Set<String> producedAfterFailover = Collections.synchronizedSet(new HashSet<>());

    KafkaCompat(String zkHost, Path work, String classpath, Path resultsFile) {
        this.zkHost = zkHost;
        this.work = work;
        this.classpath = classpath;
        this.resultsFile = resultsFile;
        this.zkPort = Integer.parseInt(zkHost.substring(zkHost.lastIndexOf(':') + 1));
    }

    // ------------------------------------------------------------ brokers --

    final class Broker {
        final int id;
        final int port;
        final Path dir;
        final Path props;
        Process proc;
        int starts;
        Path log;

        Broker(int id) throws IOException {
            this.id = id;
            this.port = zkPort + 1000 + id;
            this.dir = work.resolve("broker-" + id);
            this.props = dir.resolve("server.properties");
            Files.createDirectories(dir.resolve("data"));
            Files.writeString(props, String.join("\n",
                    "# Generated by compat-tests/kafka (KafkaCompat.java).",
                    "broker.id=" + id,
                    "listeners=PLAINTEXT://127.0.0.1:" + port,
                    "advertised.listeners=PLAINTEXT://127.0.0.1:" + port,
                    "log.dirs=" + dir.resolve("data"),
                    "zookeeper.connect=" + zkHost + CHROOT,
                    "zookeeper.session.timeout.ms=" + SESSION_TIMEOUT_MS,
                    "zookeeper.connection.timeout.ms=30000",
                    "num.network.threads=2",
                    "num.io.threads=4",
                    "background.threads=4",
                    "num.partitions=1",
                    "default.replication.factor=2",
                    "auto.create.topics.enable=false",
                    "offsets.topic.num.partitions=3",
                    "offsets.topic.replication.factor=2",
                    "transaction.state.log.num.partitions=3",
                    "transaction.state.log.replication.factor=2",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "replica.lag.time.max.ms=10000",
                    "unclean.leader.election.enable=false",
                    // preferred_leaders_restored triggers the election itself
                    "auto.leader.rebalance.enable=false",
                    "controlled.shutdown.enable=true",
                    "controlled.shutdown.retry.backoff.ms=1000",
                    // ACLs in ZooKeeper (/kafka-acl, change notifications in /kafka-acl-changes);
                    // nothing is denied unless a resource has ACLs.
                    "authorizer.class.name=kafka.security.authorizer.AclAuthorizer",
                    "allow.everyone.if.no.acl.found=true",
                    ""));
        }

        String address() {
            return "127.0.0.1:" + port;
        }

        void start() throws IOException {
            starts++;
            log = work.resolve("broker-" + id + ".start" + starts + ".log");
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            List<String> cmd = List.of(java,
                    "-Xms256m", "-Xmx512m",
                    // kafka-run-class.sh's default GC flags
                    "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
                    "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
                    "-Dlog4j.configuration=" + work.resolve("log4j-broker.properties").toUri(),
                    "-cp", classpath, "kafka.Kafka", props.toString());
            proc = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            Files.writeString(work.resolve("broker-" + id + ".pid"), proc.pid() + "\n");
            say("broker %d: started (pid %d, 127.0.0.1:%d, log %s)", id, proc.pid(), port, log.getFileName());
        }

        boolean alive() {
            return proc != null && proc.isAlive();
        }

        void signal(String sig) throws IOException, InterruptedException {
            int rc = new ProcessBuilder("kill", "-" + sig, String.valueOf(proc.pid())).inheritIO().start().waitFor();
            say("broker %d: SIG%s (kill exit %d)", id, sig, rc);
        }

        void kill() throws InterruptedException {
            if (alive()) {
                proc.destroyForcibly();
                proc.waitFor(30, TimeUnit.SECONDS);
                say("broker %d: killed (SIGKILL)", id);
            }
        }

        /** SIGTERM; true if it exited within the timeout (else SIGKILL). */
        boolean stop(Duration timeout) throws InterruptedException {
            if (!alive()) {
                return true;
            }
            proc.destroy();
            if (proc.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                say("broker %d: exited after SIGTERM (status %d)", id, proc.exitValue());
                return true;
            }
            proc.destroyForcibly();
            proc.waitFor(30, TimeUnit.SECONDS);
            say("broker %d: did not exit within %ds of SIGTERM; killed", id, timeout.toSeconds());
            return false;
        }

        String logText() throws IOException {
            return log == null || !Files.exists(log) ? "" : Files.readString(log, StandardCharsets.UTF_8);
        }

        String logTail(int lines) throws IOException {
            List<String> all = List.of(logText().split("\n"));
            return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
        }
    }

    int bindRetries;

    /**
     * Fails if a broker process has exited. One exception: the broker could not bind its
     * listener port (the ports lie in Linux's ephemeral range with some base ports, so an
     * outgoing connection can hold one for a moment): then it is started again, 3 times at most.
     */
    void ensureAlive(Broker... bs) throws Exception {
        for (Broker b : bs) {
            if (!b.alive() && b.proc != null && bindRetries < 3
                    && b.logText().contains("Socket server failed to bind to 127.0.0.1:" + b.port)) {
                bindRetries++;
                facts.put("bind_retries", bindRetries);
                say("broker %d could not bind 127.0.0.1:%d (in use); starting it again", b.id, b.port);
                Thread.sleep(1000);
                b.start();
                continue;
            }
            if (!b.alive()) {
                throw new CheckFailed("broker " + b.id + " process exited (status "
                        + (b.proc == null ? "never started" : b.proc.exitValue()) + "); last log lines:\n"
                        + b.logTail(25));
            }
        }
    }

    Broker broker(int id) {
        return brokers[id];
    }

    // ---------------------------------------------------------- zookeeper --

    void connectZk() throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        zk = new ZooKeeper(zkHost, 15_000, event -> {
            if (event.getState() == Watcher.Event.KeeperState.SyncConnected) {
                connected.countDown();
            }
        });
        if (!connected.await(30, TimeUnit.SECONDS)) {
            throw new IOException("no ZooKeeper connection to " + zkHost + " within 30s");
        }
    }

    /** Data of CHROOT+path, or null if the node does not exist. */
    byte[] data(String path, Stat stat) throws Exception {
        try {
            return zk.getData(CHROOT + path, false, stat);
        } catch (KeeperException.NoNodeException e) {
            return null;
        }
    }

    JsonNode json(String path, Stat stat) throws Exception {
        byte[] d = data(path, stat);
        return d == null ? null : JSON.readTree(d);
    }

    List<Integer> brokerIds() throws Exception {
        List<Integer> ids = new ArrayList<>();
        try {
            for (String c : zk.getChildren(CHROOT + "/brokers/ids", false)) {
                ids.add(Integer.parseInt(c));
            }
        } catch (KeeperException.NoNodeException e) {
            // not created yet
        }
        Collections.sort(ids);
        return ids;
    }

    /** brokerid in /controller, or null. */
    Integer controllerInZk(Stat stat) throws Exception {
        JsonNode c = json("/controller", stat);
        return c == null || !c.has("brokerid") ? null : c.get("brokerid").asInt();
    }

    long controllerEpochInZk() throws Exception {
        byte[] d = data("/controller_epoch", new Stat());
        return d == null ? -1 : Long.parseLong(new String(d, StandardCharsets.UTF_8).trim());
    }

    /** partition -> state JSON ({"leader":..,"isr":[..],...}) of TOPIC, null entries for missing ones. */
    Map<Integer, JsonNode> partitionStates() throws Exception {
        Map<Integer, JsonNode> m = new TreeMap<>();
        for (int p = 0; p < PARTITIONS; p++) {
            m.put(p, json("/brokers/topics/" + TOPIC + "/partitions/" + p + "/state", new Stat()));
        }
        return m;
    }

    static List<Integer> ints(JsonNode array) {
        List<Integer> l = new ArrayList<>();
        if (array != null) {
            array.forEach(n -> l.add(n.asInt()));
        }
        return l;
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    // -------------------------------------------------------------- kafka --

    Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "compat-admin");
        return Admin.create(p);
    }

    String bootstrapAll() {
        return brokers[0].address() + "," + brokers[1].address();
    }

    /** Produces n records "prefix-i"; returns acked counts per partition; fails on any error. */
    Map<Integer, Integer> produce(String bootstrap, String prefix, int n, Set<String> into) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "10");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "compat-producer-" + prefix);
        Map<Integer, Integer> perPartition = new TreeMap<>();
        AtomicInteger errors = new AtomicInteger();
        AtomicReference<Exception> firstError = new AtomicReference<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < n; i++) {
                String v = prefix + "-" + i;
                producer.send(new ProducerRecord<>(TOPIC, "k-" + prefix + "-" + i, v), (md, e) -> {
                    if (e != null) {
                        errors.incrementAndGet();
                        firstError.compareAndSet(null, e);
                    } else {
                        synchronized (perPartition) {
                            perPartition.merge(md.partition(), 1, Integer::sum);
                        }
                        into.add(v);
                    }
                });
            }
            producer.flush();
        }
        int acked = perPartition.values().stream().mapToInt(Integer::intValue).sum();
        if (errors.get() > 0 || acked != n) {
            throw new CheckFailed(String.format("%d of %d records acked, %d failed; first error: %s",
                    acked, n, errors.get(), firstError.get()));
        }
        return perPartition;
    }

    /**
     * Consumes TOPIC with group {@code group} (subscribe, from the committed
     * offsets or else the earliest) until {@code expected} are all in or
     * {@code timeout} passes, then commits. Returns the values received (in
     * order of arrival, duplicates included).
     */
    List<String> consume(String bootstrap, String group, Set<String> expected, Duration timeout) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "2000");
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "compat-consumer-" + group);
        List<String> got = new ArrayList<>();
        Set<String> missing = new HashSet<>(expected);
        long deadline = System.nanoTime() + timeout.toNanos();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
            consumer.subscribe(List.of(TOPIC));
            while (!missing.isEmpty() && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    got.add(r.value());
                    missing.remove(r.value());
                }
            }
            // Anything still in flight (e.g. unexpected extra records) for a moment more.
            for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                got.add(r.value());
            }
            consumer.commitSync(Duration.ofSeconds(30));
        }
        return got;
    }

    static String describeConsumed(List<String> got, Set<String> expected) {
        Set<String> distinct = new HashSet<>(got);
        Set<String> missing = new TreeSet<>(expected);
        missing.removeAll(distinct);
        Set<String> unexpected = new TreeSet<>(distinct);
        unexpected.removeAll(expected);
        return String.format("received %d records (%d distinct, %d duplicates), %d missing%s, %d unexpected%s",
                got.size(), distinct.size(), got.size() - distinct.size(), missing.size(),
                missing.isEmpty() ? "" : " e.g. " + first(missing, 5),
                unexpected.size(), unexpected.isEmpty() ? "" : " e.g. " + first(unexpected, 5));
    }

    static List<String> first(Set<String> s, int n) {
        return s.stream().limit(n).toList();
    }

    // ------------------------------------------------------------ helpers --

    static void say(String fmt, Object... args) {
        System.out.printf("[kafka] " + fmt + "%n", args);
        System.out.flush();
    }

    <T> T waitFor(String what, Duration timeout, Probe<T> probe) throws Exception {
        long start = System.nanoTime();
        long deadline = start + timeout.toNanos();
        String last = "";
        Exception lastError = null;
        while (true) {
            StringBuilder note = new StringBuilder();
            try {
                T v = probe.get(note);
                if (v != null) {
                    return v;
                }
                lastError = null;
            } catch (CheckFailed e) {
                throw e;
            } catch (Exception e) {
                lastError = e;
            }
            last = note.toString();
            if (System.nanoTime() > deadline) {
                throw new CheckFailed(String.format("timed out after %ds waiting for %s; last state: %s%s",
                        timeout.toSeconds(), what, last.isEmpty() ? "-" : last,
                        lastError == null ? "" : "; last error: " + lastError));
            }
            Thread.sleep(250);
        }
    }

    static double secondsSince(long startNanos) {
        return Math.round((System.nanoTime() - startNanos) / 1e8) / 10.0;
    }

    void runCase(String id, List<String> requires, Body body) {
        long t0 = System.nanoTime();
        ObjectNode c = JSON.createObjectNode();
        c.put("id", id);
        String st;
        String msg;
        String kind = null;
        List<String> blockedBy = requires.stream().filter(r -> !"passed".equals(status.get(r))).toList();
        if (!blockedBy.isEmpty()) {
            st = "failed";
            kind = "blocked";
            msg = "blocked: prerequisite case(s) " + blockedBy + " did not pass";
        } else {
            say("case %s ...", id);
            try {
                msg = body.run();
                st = "passed";
            } catch (CheckFailed e) {
                st = "failed";
                kind = "check";
                msg = e.getMessage();
            } catch (Throwable e) {
                st = "failed";
                kind = "error";
                Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
                StringWriter sw = new StringWriter();
                cause.printStackTrace(new PrintWriter(sw));
                List<String> lines = List.of(sw.toString().split("\n"));
                msg = String.join("\n", lines.subList(0, Math.min(12, lines.size())));
            }
        }
        status.put(id, st);
        c.put("status", st);
        if (kind != null) {
            c.put("failure_kind", kind);
        }
        c.put("message", msg);
        c.put("duration_s", secondsSince(t0));
        cases.add(c);
        say("%s %s (%.1fs): %s", st.equals("passed") ? "PASS" : "FAIL", id, secondsSince(t0), msg);
        writeResults(false, null);
    }

    void writeResults(boolean finished, String fatal) {
        ObjectNode root = JSON.createObjectNode();
        root.put("finished", finished);
        if (fatal != null) {
            root.put("fatal", fatal);
        }
        root.put("zk", zkHost);
        root.put("chroot", CHROOT);
        root.put("kafka_version", org.apache.kafka.common.utils.AppInfoParser.getVersion());
        root.put("zookeeper_client_version", org.apache.zookeeper.Version.getFullVersion());
        ArrayNode arr = root.putArray("cases");
        cases.forEach(arr::add);
        root.set("facts", facts);
        try {
            Path tmp = resultsFile.resolveSibling(resultsFile.getFileName() + ".tmp");
            JSON.writeValue(tmp.toFile(), root);
            Files.move(tmp, resultsFile, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            say("cannot write %s: %s", resultsFile, e);
        }
    }

    // -------------------------------------------------------------- cases --

    static final Pattern REGISTERED = Pattern.compile(
            "Registered broker (\\d+) at path /brokers/ids/\\d+ with addresses: .*, czxid \\(broker epoch\\): (-?\\d+)");
    static final Pattern CREATED_STAT = Pattern.compile(
            "Stat of the created znode at /brokers/ids/(\\d+) is: ([-\\d,]+)");

    /** The broker's own log: (czxid it reported as its epoch, the Stat it got from the registration multi). */
    long[] loggedRegistration(Broker b, Long expectCzxid) throws Exception {
        return waitFor("broker " + b.id + " to log its registration", Duration.ofSeconds(15), note -> {
            String text = b.logText();
            // the broker's latest registration (it registers again after a session expiry)
            Matcher m = REGISTERED.matcher(text);
            Matcher s = CREATED_STAT.matcher(text);
            String epoch = null;
            String stat = null;
            while (m.find()) {
                epoch = m.group(2);
            }
            while (s.find()) {
                stat = s.group(2);
            }
            if (epoch == null || stat == null) {
                note.append("no 'Registered broker' / 'Stat of the created znode' line in ").append(b.log.getFileName());
                return null;
            }
            String[] f = stat.split(",");
            // Stat.toString(): czxid,mzxid,ctime,mtime,version,cversion,aversion,ephemeralOwner,dataLength,numChildren,pzxid
            long[] v = {Long.parseLong(epoch), Long.parseLong(f[0]), Long.parseLong(f[1]),
                Long.parseLong(f[4]), Long.parseLong(f[7]), Long.parseLong(f[8])};
            if (expectCzxid != null && v[0] != expectCzxid && v[1] != expectCzxid) {
                note.append("last registration logged czxid ").append(hex(v[0])).append(", waiting for ").append(hex(expectCzxid));
                return null;
            }
            return v;
        });
    }

    String checkEpochIsCzxid(Broker b) throws Exception {
        Stat st = new Stat();
        if (data("/brokers/ids/" + b.id, st) == null) {
            throw new CheckFailed("/brokers/ids/" + b.id + " does not exist");
        }
        long[] logged;
        try {
            // give the log a moment to show the registration whose znode we see
            logged = loggedRegistration(b, st.getCzxid());
        } catch (CheckFailed e) {
            logged = loggedRegistration(b, null);
        }
        List<String> bad = new ArrayList<>();
        if (logged[0] != st.getCzxid()) {
            bad.add(String.format("broker epoch in the log %s != czxid %s", hex(logged[0]), hex(st.getCzxid())));
        }
        if (logged[1] != st.getCzxid() || logged[2] != st.getMzxid()) {
            bad.add(String.format("Stat from the registration multi's setData has czxid %s mzxid %s, getData's Stat czxid %s mzxid %s",
                    hex(logged[1]), hex(logged[2]), hex(st.getCzxid()), hex(st.getMzxid())));
        }
        if (st.getCzxid() != st.getMzxid()) {
            bad.add(String.format("czxid %s != mzxid %s, but create and setData ran in one multi (one zxid)",
                    hex(st.getCzxid()), hex(st.getMzxid())));
        }
        if (logged[3] != 1 || st.getVersion() != 1) {
            bad.add(String.format("version after create(null)+setData(version 0): multi Stat %d, getData %d, expected 1",
                    logged[3], st.getVersion()));
        }
        if (logged[4] != st.getEphemeralOwner() || st.getEphemeralOwner() == 0) {
            bad.add(String.format("ephemeralOwner: multi Stat %s, getData %s", hex(logged[4]), hex(st.getEphemeralOwner())));
        }
        if (logged[5] != st.getDataLength()) {
            bad.add(String.format("dataLength: multi Stat %d, getData %d", logged[5], st.getDataLength()));
        }
        if (!bad.isEmpty()) {
            throw new CheckFailed("broker " + b.id + ": " + String.join("; ", bad));
        }
        facts.put("broker_" + b.id + "_epoch_start" + b.starts, st.getCzxid());
        return String.format("broker %d epoch %s = czxid = mzxid, version 1", b.id, hex(st.getCzxid()));
    }

    /** Waits until all partitions of TOPIC satisfy ok(state, replicas) in ZooKeeper and in the admin's metadata. */
    String waitPartitions(String what, String bootstrap, Duration timeout,
                          java.util.function.BiPredicate<JsonNode, List<Integer>> zkOk,
                          java.util.function.BiPredicate<TopicPartitionInfo, List<Integer>> adminOk) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            return waitFor(what, timeout, note -> {
                Map<Integer, JsonNode> states = partitionStates();
                boolean ok = true;
                for (var e : states.entrySet()) {
                    List<Integer> replicas = assignment.get(e.getKey());
                    if (e.getValue() == null || !zkOk.test(e.getValue(), replicas)) {
                        ok = false;
                    }
                }
                note.append("zk states ").append(states);
                TopicDescription td = admin.describeTopics(List.of(TOPIC)).allTopicNames()
                        .get(15, TimeUnit.SECONDS).get(TOPIC);
                List<String> meta = new ArrayList<>();
                for (TopicPartitionInfo pi : td.partitions()) {
                    meta.add(String.format("p%d leader=%s isr=%s", pi.partition(),
                            pi.leader() == null || pi.leader().isEmpty() ? "none" : pi.leader().id(),
                            pi.isr().stream().map(Node::id).toList()));
                    if (!adminOk.test(pi, assignment.get(pi.partition()))) {
                        ok = false;
                    }
                }
                note.append("; metadata ").append(meta);
                return ok ? states.toString() + " / metadata " + meta : null;
            });
        }
    }


    List<String> children(String path) throws Exception {
        try {
            List<String> l = new ArrayList<>(zk.getChildren(CHROOT + path, false));
            Collections.sort(l);
            return l;
        } catch (KeeperException.NoNodeException e) {
            return null;
        }
    }

    static int count(String text, String needle) {
        int n = 0;
        for (int i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + 1)) {
            n++;
        }
        return n;
    }

    /** Checks that a ZooKeeper sequential child name is prefix + 10 digits; returns the number. */
    static long sequence(String name, String prefix) throws CheckFailed {
        if (!name.matches(Pattern.quote(prefix) + "\\d{10}")) {
            throw new CheckFailed("sequential node '" + name + "' is not " + prefix + "<10 digits>");
        }
        return Long.parseLong(name.substring(prefix.length()));
    }

    static int leaderOf(TopicPartitionInfo pi) {
        return pi.leader() == null || pi.leader().isEmpty() ? -1 : pi.leader().id();
    }

    void run() throws Exception {
        for (int i = 0; i < brokers.length; i++) {
            brokers[i] = new Broker(i);
        }
        Files.writeString(work.resolve("log4j-broker.properties"), String.join("\n",
                "log4j.rootLogger=INFO, stdout",
                "log4j.appender.stdout=org.apache.log4j.ConsoleAppender",
                "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout",
                "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n",
                "log4j.logger.kafka.request.logger=WARN",
                "log4j.logger.kafka.controller=TRACE",
                "log4j.logger.state.change.logger=INFO",
                "log4j.logger.org.apache.zookeeper=INFO",
                "log4j.logger.kafka.zookeeper=INFO",
                ""));
        connectZk();
        say("driver connected to %s (session %s); Kafka %s, ZooKeeper client %s", zkHost,
                hex(zk.getSessionId()), org.apache.kafka.common.utils.AppInfoParser.getVersion(),
                org.apache.zookeeper.Version.getFullVersion());

        runCase("brokers_registered", List.of(), () -> {
            long t0 = System.nanoTime();
            for (Broker b : brokers) {
                b.start();
            }
            waitFor("/brokers/ids = [0, 1]", Duration.ofSeconds(120), note -> {
                ensureAlive(brokers);
                List<Integer> ids = brokerIds();
                note.append("/brokers/ids ").append(ids);
                return ids.equals(List.of(0, 1)) ? ids : null;
            });
            List<String> out = new ArrayList<>();
            for (Broker b : brokers) {
                Stat st = new Stat();
                JsonNode reg = json("/brokers/ids/" + b.id, st);
                if (reg == null) {
                    throw new CheckFailed("/brokers/ids/" + b.id + " vanished");
                }
                if (st.getEphemeralOwner() == 0) {
                    throw new CheckFailed("/brokers/ids/" + b.id + " is not ephemeral: " + st);
                }
                String ep = "PLAINTEXT://127.0.0.1:" + b.port;
                if (reg.get("endpoints") == null || !reg.get("endpoints").toString().contains(ep)) {
                    throw new CheckFailed("/brokers/ids/" + b.id + " does not list " + ep + ": " + reg);
                }
                out.add(String.format("%d (session %s)", b.id, hex(st.getEphemeralOwner())));
            }
            if (data("/cluster/id", new Stat()) == null) {
                throw new CheckFailed("/cluster/id missing");
            }
            JsonNode cluster = json("/cluster/id", new Stat());
            facts.put("cluster_id", cluster.path("id").asText());
            return String.format("brokers %s registered %.1fs after start; cluster id %s", out,
                    secondsSince(t0), cluster.path("id").asText());
        });

        runCase("controller_elected", List.of("brokers_registered"), () -> {
            Stat cst = new Stat();
            Integer c = waitFor("/controller", Duration.ofSeconds(30), note -> controllerInZk(cst));
            if (c != 0 && c != 1) {
                throw new CheckFailed("/controller names broker " + c);
            }
            Stat bst = new Stat();
            if (data("/brokers/ids/" + c, bst) == null) {
                throw new CheckFailed("controller " + c + " is not registered");
            }
            if (cst.getEphemeralOwner() == 0 || cst.getEphemeralOwner() != bst.getEphemeralOwner()) {
                throw new CheckFailed(String.format("/controller ephemeralOwner %s, /brokers/ids/%d ephemeralOwner %s "
                        + "(both are created by the controller broker's one session)",
                        hex(cst.getEphemeralOwner()), c, hex(bst.getEphemeralOwner())));
            }
            long epoch = controllerEpochInZk();
            if (epoch < 1) {
                throw new CheckFailed("/controller_epoch is " + epoch);
            }
            try (Admin admin = admin(bootstrapAll())) {
                waitFor("the brokers' metadata to name controller " + c, Duration.ofSeconds(30), note -> {
                    Node ctl = admin.describeCluster().controller().get(15, TimeUnit.SECONDS);
                    int nodes = admin.describeCluster().nodes().get(15, TimeUnit.SECONDS).size();
                    note.append("controller ").append(ctl).append(", ").append(nodes).append(" nodes");
                    return ctl != null && ctl.id() == c && nodes == 2 ? ctl : null;
                });
            }
            controllerEpoch = epoch;
            facts.put("first_controller", c);
            return String.format("controller %d, controller_epoch %d, /controller czxid %s", c, epoch, hex(cst.getCzxid()));
        });

        runCase("broker_epoch_is_czxid", List.of("brokers_registered"), () -> {
            List<String> out = new ArrayList<>();
            for (Broker b : brokers) {
                out.add(checkEpochIsCzxid(b));
            }
            Stat s0 = new Stat();
            Stat s1 = new Stat();
            data("/brokers/ids/0", s0);
            data("/brokers/ids/1", s1);
            if (s0.getCzxid() == s1.getCzxid()) {
                throw new CheckFailed("both brokers have czxid " + hex(s0.getCzxid()));
            }
            return String.join("; ", out);
        });

        runCase("topic_created", List.of("brokers_registered"), () -> {
            try (Admin admin = admin(bootstrapAll())) {
                admin.createTopics(List.of(new NewTopic(TOPIC, PARTITIONS, REPLICATION))).all().get(60, TimeUnit.SECONDS);
            }
            JsonNode topic = waitFor("/brokers/topics/" + TOPIC, Duration.ofSeconds(30), note -> json("/brokers/topics/" + TOPIC, new Stat()));
            JsonNode parts = topic.get("partitions");
            if (parts == null || parts.size() != PARTITIONS) {
                throw new CheckFailed("assignment in /brokers/topics/" + TOPIC + ": " + topic);
            }
            for (int p = 0; p < PARTITIONS; p++) {
                List<Integer> r = ints(parts.get(String.valueOf(p)));
                if (r.size() != 2 || !new TreeSet<>(r).equals(new TreeSet<>(List.of(0, 1)))) {
                    throw new CheckFailed("partition " + p + " replicas " + r);
                }
                assignment.put(p, r);
            }
            String states = waitPartitions("3 partitions with a leader and ISR [0, 1]", bootstrapAll(), Duration.ofSeconds(45),
                    (s, r) -> r.contains(s.path("leader").asInt(-1)) && ints(s.get("isr")).size() == 2,
                    (pi, r) -> r.contains(leaderOf(pi)) && pi.isr().size() == 2);
            facts.putPOJO("assignment", assignment.toString());
            return "assignment " + assignment + "; states " + states;
        });

        runCase("produce_10000", List.of("topic_created"), () -> {
            long t0 = System.nanoTime();
            Map<Integer, Integer> per = produce(bootstrapAll(), "v", MESSAGES, produced);
            if (per.size() != PARTITIONS) {
                throw new CheckFailed("records went to partitions " + per.keySet() + " only");
            }
            double secs = secondsSince(t0);
            Map<TopicPartition, OffsetSpec> q = new HashMap<>();
            for (int p = 0; p < PARTITIONS; p++) {
                q.put(new TopicPartition(TOPIC, p), OffsetSpec.latest());
            }
            long total = 0;
            try (Admin admin = admin(bootstrapAll())) {
                for (var e : admin.listOffsets(q).all().get(30, TimeUnit.SECONDS).entrySet()) {
                    total += e.getValue().offset();
                }
            }
            if (total != MESSAGES) {
                throw new CheckFailed("end offsets add up to " + total + ", not " + MESSAGES);
            }
            // The idempotent producer's id came from a block the controller reserved with a
            // versioned setData of /latest_producer_id_block.
            Stat pst = new Stat();
            JsonNode block = json("/latest_producer_id_block", pst);
            if (block == null || Long.parseLong(block.path("block_end").asText("-1"))
                    < Long.parseLong(block.path("block_start").asText("0"))) {
                throw new CheckFailed("/latest_producer_id_block is " + block);
            }
            return String.format("%d records acked (acks=all, idempotent) in %.1fs, per partition %s; end offsets sum %d; "
                    + "/latest_producer_id_block %s (version %d)", MESSAGES, secs, per, total, block, pst.getVersion());
        });

        runCase("consume_10000", List.of("produce_10000"), () -> {
            long t0 = System.nanoTime();
            Set<String> expected = new HashSet<>(produced);
            List<String> got = consume(bootstrapAll(), GROUP, expected, Duration.ofSeconds(60));
            String d = describeConsumed(got, expected);
            if (!new HashSet<>(got).equals(expected)) {
                throw new CheckFailed(d);
            }
            long committed = 0;
            try (Admin admin = admin(bootstrapAll())) {
                for (OffsetAndMetadata om : admin.listConsumerGroupOffsets(GROUP).partitionsToOffsetAndMetadata()
                        .get(30, TimeUnit.SECONDS).values()) {
                    committed += om == null ? 0 : om.offset();
                }
            }
            if (committed != MESSAGES) {
                throw new CheckFailed(d + "; but the group's committed offsets add up to " + committed);
            }
            return String.format("group %s: %s in %.1fs; committed offsets sum %d", GROUP, d, secondsSince(t0), committed);
        });

        runCase("dynamic_config_propagates", List.of("brokers_registered"), () -> {
            // A cluster-wide dynamic broker config: written by the broker that handles the
            // request to /config/brokers/<default> plus a sequential /config/changes/config_change_N;
            // every broker picks it up through its child watch on /config/changes.
            String key = "message.max.bytes";
            String value = "2000012";
            List<String> before = children("/config/changes");
            try (Admin admin = admin(bootstrapAll())) {
                admin.incrementalAlterConfigs(Map.of(new ConfigResource(ConfigResource.Type.BROKER, ""),
                        List.of(new AlterConfigOp(new ConfigEntry(key, value), AlterConfigOp.OpType.SET))))
                        .all().get(30, TimeUnit.SECONDS);
                JsonNode stored = json("/config/brokers/<default>", new Stat());
                if (stored == null || !value.equals(stored.path("config").path(key).asText())) {
                    throw new CheckFailed("/config/brokers/<default> is " + stored);
                }
                List<String> after = children("/config/changes");
                List<String> added = new ArrayList<>(after == null ? List.of() : after);
                if (before != null) {
                    added.removeAll(before);
                }
                if (added.size() != 1) {
                    throw new CheckFailed("/config/changes: before " + before + ", after " + after);
                }
                sequence(added.get(0), "config_change_");
                for (Broker b : brokers) {
                    ConfigResource r = new ConfigResource(ConfigResource.Type.BROKER, String.valueOf(b.id));
                    waitFor("broker " + b.id + " to report " + key + "=" + value, Duration.ofSeconds(30), note -> {
                        Config c = admin.describeConfigs(List.of(r)).all().get(15, TimeUnit.SECONDS).get(r);
                        ConfigEntry e = c.get(key);
                        note.append(e);
                        return e != null && value.equals(e.value())
                                && e.source() == ConfigEntry.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG ? e : null;
                    });
                }
                return String.format("%s=%s stored in /config/brokers/<default>, notification %s, applied by both brokers",
                        key, value, added.get(0));
            }
        });

        runCase("acl_change_propagates", List.of("brokers_registered"), () -> {
            // AclAuthorizer: ACLs in /kafka-acl/Topic/<name> (versioned updates), each change
            // announced by a sequential /kafka-acl-changes/acl_changes_N that every broker watches.
            AclBinding acl = new AclBinding(new ResourcePattern(ResourceType.TOPIC, ACL_TOPIC, PatternType.LITERAL),
                    new AccessControlEntry("User:compat-alice", "*", AclOperation.READ, AclPermissionType.ALLOW));
            String marker = "Processing Acl change notification for ResourcePattern(resourceType=TOPIC, name=" + ACL_TOPIC;
            int[] seen = new int[brokers.length];
            for (Broker b : brokers) {
                seen[b.id] = count(b.logText(), marker);
            }
            List<String> out = new ArrayList<>();
            try (Admin admin = admin(bootstrapAll())) {
                admin.createAcls(List.of(acl)).all().get(30, TimeUnit.SECONDS);
                JsonNode stored = json("/kafka-acl/Topic/" + ACL_TOPIC, new Stat());
                if (stored == null || !stored.toString().contains("User:compat-alice")) {
                    throw new CheckFailed("/kafka-acl/Topic/" + ACL_TOPIC + " is " + stored);
                }
                List<String> changes = children("/kafka-acl-changes");
                if (changes == null || changes.isEmpty()) {
                    throw new CheckFailed("no change notification under /kafka-acl-changes");
                }
                long first = sequence(changes.get(changes.size() - 1), "acl_changes_");
                for (Broker b : brokers) {
                    waitFor("broker " + b.id + " to process the ACL change notification", Duration.ofSeconds(30), note ->
                            count(b.logText(), marker) > seen[b.id] ? Boolean.TRUE : null);
                    seen[b.id] = count(b.logText(), marker);
                }
                Set<AclBinding> described = new HashSet<>(admin.describeAcls(AclBindingFilter.ANY).values().get(30, TimeUnit.SECONDS));
                if (!described.contains(acl)) {
                    throw new CheckFailed("describeAcls does not list the new ACL: " + described);
                }
                out.add("created: " + changes.get(changes.size() - 1) + ", both brokers reloaded it");
                admin.deleteAcls(List.of(acl.toFilter())).all().get(30, TimeUnit.SECONDS);
                waitFor("/kafka-acl/Topic/" + ACL_TOPIC + " to be deleted", Duration.ofSeconds(15), note ->
                        data("/kafka-acl/Topic/" + ACL_TOPIC, new Stat()) == null ? Boolean.TRUE : null);
                changes = children("/kafka-acl-changes");
                long second = sequence(changes.get(changes.size() - 1), "acl_changes_");
                if (second <= first) {
                    throw new CheckFailed("the delete's notification " + changes + " does not follow " + first);
                }
                for (Broker b : brokers) {
                    waitFor("broker " + b.id + " to process the ACL delete notification", Duration.ofSeconds(30), note ->
                            count(b.logText(), marker) > seen[b.id] ? Boolean.TRUE : null);
                }
                if (!admin.describeAcls(AclBindingFilter.ANY).values().get(30, TimeUnit.SECONDS).isEmpty()) {
                    throw new CheckFailed("ACLs left after deleteAcls");
                }
                out.add("deleted: " + changes.get(changes.size() - 1) + ", both brokers reloaded it");
            }
            return String.join("; ", out);
        });

        runCase("partitions_added", List.of("brokers_registered"), () -> {
            // createPartitions: a conditional setData of /brokers/topics/<topic> (data watch on
            // the controller), which then creates the new partitions' state znodes.
            try (Admin admin = admin(bootstrapAll())) {
                admin.createTopics(List.of(new NewTopic(TOPIC2, 1, REPLICATION))).all().get(60, TimeUnit.SECONDS);
                waitFor(TOPIC2 + "/partitions/0/state", Duration.ofSeconds(30), note ->
                        json("/brokers/topics/" + TOPIC2 + "/partitions/0/state", new Stat()));
                Stat before = new Stat();
                data("/brokers/topics/" + TOPIC2, before);
                admin.createPartitions(Map.of(TOPIC2, NewPartitions.increaseTo(3))).all().get(60, TimeUnit.SECONDS);
                Stat after = new Stat();
                JsonNode topic = json("/brokers/topics/" + TOPIC2, after);
                if (topic == null || topic.path("partitions").size() != 3 || after.getVersion() != before.getVersion() + 1) {
                    throw new CheckFailed(String.format("/brokers/topics/%s (version %d -> %d): %s", TOPIC2,
                            before.getVersion(), after.getVersion(), topic));
                }
                String states = waitFor("3 partitions of " + TOPIC2 + " with a leader", Duration.ofSeconds(30), note -> {
                    List<String> l = new ArrayList<>();
                    for (int p = 0; p < 3; p++) {
                        JsonNode st = json("/brokers/topics/" + TOPIC2 + "/partitions/" + p + "/state", new Stat());
                        if (st == null || st.path("leader").asInt(-1) < 0) {
                            note.append("partition ").append(p).append(" state ").append(st);
                            return null;
                        }
                        l.add(p + "=" + st);
                    }
                    TopicDescription td = admin.describeTopics(List.of(TOPIC2)).allTopicNames().get(15, TimeUnit.SECONDS).get(TOPIC2);
                    note.append("metadata ").append(td);
                    return td.partitions().size() == 3 && td.partitions().stream().allMatch(pi -> leaderOf(pi) >= 0)
                            ? l.toString() : null;
                });
                Properties pp = new Properties();
                pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapAll());
                pp.put(ProducerConfig.ACKS_CONFIG, "all");
                pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
                pp.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
                try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer())) {
                    for (int p = 0; p < 3; p++) {
                        producer.send(new ProducerRecord<>(TOPIC2, p, "k", "v" + p)).get(30, TimeUnit.SECONDS);
                    }
                }
                return "1 -> 3 partitions, one record acked on each; states " + states;
            }
        });

        runCase("topic_deleted", List.of("partitions_added"), () -> {
            // deleteTopics: /admin/delete_topics/<topic> (child watch on the controller), which
            // deletes the topic's znodes recursively, each delete fenced by a check op.
            try (Admin admin = admin(bootstrapAll())) {
                admin.deleteTopics(List.of(TOPIC2)).all().get(60, TimeUnit.SECONDS);
                waitFor(TOPIC2 + "'s znodes to be deleted", Duration.ofSeconds(60), note -> {
                    List<String> left = new ArrayList<>();
                    for (String path : List.of("/brokers/topics/" + TOPIC2, "/config/topics/" + TOPIC2,
                            "/admin/delete_topics/" + TOPIC2)) {
                        if (data(path, new Stat()) != null) {
                            left.add(path);
                        }
                    }
                    note.append("left: ").append(left);
                    return left.isEmpty() ? Boolean.TRUE : null;
                });
                Set<String> topics = waitFor("the brokers to drop " + TOPIC2, Duration.ofSeconds(30), note -> {
                    Set<String> names = admin.listTopics().names().get(15, TimeUnit.SECONDS);
                    note.append(names);
                    return names.contains(TOPIC2) ? null : names;
                });
                return "znodes gone; topics now " + new TreeSet<>(topics);
            }
        });

        runCase("controller_reelected_after_znode_delete", List.of("controller_elected"), () -> {
            // Deleting /controller (an old admin trick) makes every broker's exists-watch fire
            // and all race to create it again (create + controller_epoch setData in one multi).
            Stat old = new Stat();
            Integer was = controllerInZk(old);
            if (was == null) {
                throw new CheckFailed("no /controller");
            }
            long epochBefore = controllerEpochInZk();
            zk.delete(CHROOT + "/controller", -1);
            Stat now = new Stat();
            Integer c = waitFor("a new /controller", Duration.ofSeconds(30), note -> {
                Integer id = controllerInZk(now);
                note.append("/controller ").append(id);
                return id != null && now.getCzxid() != old.getCzxid() ? id : null;
            });
            long epochAfter = controllerEpochInZk();
            if (epochAfter != epochBefore + 1) {
                throw new CheckFailed(String.format("controller_epoch went from %d to %d (expected +1)", epochBefore, epochAfter));
            }
            Stat bst = new Stat();
            data("/brokers/ids/" + c, bst);
            if (now.getEphemeralOwner() != bst.getEphemeralOwner()) {
                throw new CheckFailed(String.format("/controller ephemeralOwner %s != /brokers/ids/%d's %s",
                        hex(now.getEphemeralOwner()), c, hex(bst.getEphemeralOwner())));
            }
            try (Admin admin = admin(bootstrapAll())) {
                waitFor("the brokers' metadata to name controller " + c, Duration.ofSeconds(30), note -> {
                    Node ctl = admin.describeCluster().controller().get(15, TimeUnit.SECONDS);
                    note.append("controller ").append(ctl);
                    return ctl != null && ctl.id() == c ? ctl : null;
                });
            }
            controllerEpoch = epochAfter;
            return String.format("controller %d -> %d, controller_epoch %d -> %d", was, c, epochBefore, epochAfter);
        });

        runCase("controller_failover", List.of("controller_elected"), () -> {
            Stat cst = new Stat();
            Integer c = controllerInZk(cst);
            if (c == null) {
                throw new CheckFailed("no /controller before the failover");
            }
            int s = 1 - c;
            long epochBefore = controllerEpochInZk();
            Stat kst = new Stat();
            data("/brokers/ids/" + c, kst);
            killedCzxid = kst.getCzxid();
            ensureAlive(broker(s));
            broker(c).kill();
            killedId = c;
            survivorId = s;
            long t0 = System.nanoTime();
            Stat nst = new Stat();
            waitFor("/controller to name broker " + s + " (the old session expires after "
                    + SESSION_TIMEOUT_MS + " ms)", Duration.ofSeconds(60), note -> {
                ensureAlive(broker(s));
                Integer now = controllerInZk(nst);
                note.append("/controller brokerid ").append(now).append(", /brokers/ids ").append(brokerIds());
                return now != null && now == s ? now : null;
            });
            double electedAfter = secondsSince(t0);
            List<Integer> ids = waitFor("/brokers/ids = [" + s + "]", Duration.ofSeconds(10), note -> {
                List<Integer> l = brokerIds();
                note.append(l);
                return l.equals(List.of(s)) ? l : null;
            });
            long epochAfter = controllerEpochInZk();
            if (epochAfter != epochBefore + 1) {
                throw new CheckFailed(String.format("controller_epoch went from %d to %d (expected +1)", epochBefore, epochAfter));
            }
            Stat sst = new Stat();
            data("/brokers/ids/" + s, sst);
            if (nst.getEphemeralOwner() != sst.getEphemeralOwner()) {
                throw new CheckFailed(String.format("new /controller ephemeralOwner %s != /brokers/ids/%d's %s",
                        hex(nst.getEphemeralOwner()), s, hex(sst.getEphemeralOwner())));
            }
            if (nst.getEphemeralOwner() == cst.getEphemeralOwner()) {
                throw new CheckFailed("/controller still owned by the killed broker's session " + hex(cst.getEphemeralOwner()));
            }
            try (Admin admin = admin(broker(s).address())) {
                waitFor("broker " + s + "'s metadata to name itself controller", Duration.ofSeconds(30), note -> {
                    Node ctl = admin.describeCluster().controller().get(15, TimeUnit.SECONDS);
                    note.append("controller ").append(ctl);
                    return ctl != null && ctl.id() == s ? ctl : null;
                });
            }
            controllerEpoch = epochAfter;
            facts.put("failover_election_s", electedAfter);
            return String.format("killed controller %d (SIGKILL); broker %d became controller %.1fs later, "
                    + "controller_epoch %d -> %d, /brokers/ids %s", c, s, electedAfter, epochBefore, epochAfter, ids);
        });

        runCase("topic_served_after_failover", List.of("controller_failover", "topic_created"), () -> {
            int s = survivorId;
            String states = waitPartitions("every partition led by broker " + s + " with ISR [" + s + "]",
                    broker(s).address(), Duration.ofSeconds(45),
                    (st, r) -> st.path("leader").asInt(-1) == s && ints(st.get("isr")).equals(List.of(s)),
                    (pi, r) -> leaderOf(pi) == s);
            Map<Integer, Integer> per = produce(broker(s).address(), "after", MESSAGES_AFTER_FAILOVER, producedAfterFailover);
            produced.addAll(producedAfterFailover);
            // With the group's offsets committed by consume_10000 (and replicated to
            // both brokers), the same group now gets exactly the new records; else
            // a new group reads everything.
            boolean resume = "passed".equals(status.get("consume_10000"));
            String group = resume ? GROUP : GROUP + "-after-failover";
            Set<String> expected = new HashSet<>(resume ? producedAfterFailover : produced);
            List<String> got = consume(broker(s).address(), group, expected, Duration.ofSeconds(60));
            String d = describeConsumed(got, expected);
            if (!new HashSet<>(got).equals(expected)) {
                throw new CheckFailed("group " + group + ": " + d);
            }
            return String.format("states %s; produced %d more %s, group %s %s", states, MESSAGES_AFTER_FAILOVER, per,
                    group, d);
        });

        runCase("broker_rejoins", List.of("controller_failover"), () -> {
            int c = killedId;
            int s = survivorId;
            Broker b = broker(c);
            long t0 = System.nanoTime();
            b.start();
            Stat st = new Stat();
            waitFor("/brokers/ids/" + c + " to reappear", Duration.ofSeconds(120), note -> {
                ensureAlive(b);
                note.append("/brokers/ids ").append(brokerIds());
                return data("/brokers/ids/" + c, st);
            });
            double after = secondsSince(t0);
            if (st.getCzxid() <= killedCzxid) {
                throw new CheckFailed(String.format("new registration czxid %s not above the old one %s",
                        hex(st.getCzxid()), hex(killedCzxid)));
            }
            String epoch = checkEpochIsCzxid(b);
            List<Integer> ids = brokerIds();
            if (!ids.equals(List.of(0, 1))) {
                throw new CheckFailed("/brokers/ids " + ids);
            }
            Integer ctl = controllerInZk(new Stat());
            if (ctl == null || ctl != s || controllerEpochInZk() != controllerEpoch) {
                throw new CheckFailed(String.format("controller changed on rejoin: /controller %s, epoch %d (was %d, %d)",
                        ctl, controllerEpochInZk(), s, controllerEpoch));
            }
            return String.format("broker %d registered again %.1fs after restart (czxid %s -> %s); %s; controller still %d",
                    c, after, hex(killedCzxid), hex(st.getCzxid()), epoch, s);
        });

        runCase("isr_expands_after_rejoin", List.of("broker_rejoins", "topic_created"), () -> {
            long t0 = System.nanoTime();
            String states = waitPartitions("every partition's ISR back to 2 replicas", bootstrapAll(), Duration.ofSeconds(60),
                    (st, r) -> new TreeSet<>(ints(st.get("isr"))).equals(new TreeSet<>(List.of(0, 1))),
                    (pi, r) -> pi.isr().size() == 2);
            return String.format("ISR expanded within %.1fs: %s", secondsSince(t0), states);
        });

        runCase("preferred_leaders_restored", List.of("isr_expands_after_rejoin"), () -> {
            Set<TopicPartition> tps = new HashSet<>();
            for (int p = 0; p < PARTITIONS; p++) {
                tps.add(new TopicPartition(TOPIC, p));
            }
            Map<String, String> outcome = new TreeMap<>();
            try (Admin admin = admin(bootstrapAll())) {
                Map<TopicPartition, Optional<Throwable>> res = admin.electLeaders(ElectionType.PREFERRED, tps)
                        .partitions().get(60, TimeUnit.SECONDS);
                for (var e : res.entrySet()) {
                    if (e.getValue().isPresent() && !(e.getValue().get() instanceof ElectionNotNeededException)) {
                        throw new CheckFailed("preferred leader election for " + e.getKey() + " failed: " + e.getValue().get());
                    }
                    outcome.put(e.getKey().toString(), e.getValue().map(t -> "not needed").orElse("elected"));
                }
            }
            String states = waitPartitions("every partition led by its preferred replica", bootstrapAll(), Duration.ofSeconds(30),
                    (st, r) -> st.path("leader").asInt(-1) == r.get(0),
                    (pi, r) -> leaderOf(pi) == r.get(0));
            return "electLeaders(PREFERRED): " + outcome + "; states " + states;
        });

        runCase("consume_all_after_rejoin", List.of("produce_10000", "broker_rejoins"), () -> {
            long t0 = System.nanoTime();
            Set<String> expected = new HashSet<>(produced);
            List<String> got = consume(bootstrapAll(), GROUP + "-all", expected, Duration.ofSeconds(60));
            String d = describeConsumed(got, expected);
            if (!new HashSet<>(got).equals(expected)) {
                throw new CheckFailed(d);
            }
            return String.format("new group %s-all: %s in %.1fs", GROUP, d, secondsSince(t0));
        });

        runCase("paused_controller_fenced", List.of("broker_rejoins"), () -> {
            // SIGSTOP the controller past its session timeout: the server expires its session
            // (ephemerals gone), the other broker takes over. After SIGCONT the old controller
            // must learn that its session expired (on reconnect), resign, and register again
            // with a new session and a new broker epoch; the new controller keeps its job.
            Stat cst = new Stat();
            Integer k = controllerInZk(cst);
            if (k == null) {
                throw new CheckFailed("no /controller");
            }
            int s = 1 - k;
            Broker b = broker(k);
            ensureAlive(brokers);
            long epochBefore = controllerEpochInZk();
            Stat old = new Stat();
            data("/brokers/ids/" + k, old);
            int resignedBefore = count(b.logText(), "Resigned");
            b.signal("STOP");
            double tookOver;
            try {
                long t0 = System.nanoTime();
                waitFor("broker " + s + " to take over from the paused controller " + k, Duration.ofSeconds(60), note -> {
                    Integer now = controllerInZk(new Stat());
                    List<Integer> ids = brokerIds();
                    note.append("/controller ").append(now).append(", /brokers/ids ").append(ids);
                    return now != null && now == s && ids.equals(List.of(s)) ? now : null;
                });
                tookOver = secondsSince(t0);
            } finally {
                b.signal("CONT");
            }
            long epochAfter = controllerEpochInZk();
            if (epochAfter != epochBefore + 1) {
                throw new CheckFailed(String.format("controller_epoch went from %d to %d (expected +1)", epochBefore, epochAfter));
            }
            long t1 = System.nanoTime();
            Stat st = new Stat();
            waitFor("broker " + k + " to register again with a new session", Duration.ofSeconds(60), note -> {
                ensureAlive(b);
                Stat x = new Stat();
                byte[] d = data("/brokers/ids/" + k, x);
                note.append("/brokers/ids ").append(brokerIds());
                if (d == null || x.getCzxid() <= old.getCzxid()) {
                    return null;
                }
                data("/brokers/ids/" + k, st);
                return Boolean.TRUE;
            });
            double back = secondsSince(t1);
            if (st.getEphemeralOwner() == old.getEphemeralOwner()) {
                throw new CheckFailed("broker " + k + " registered again in its old session " + hex(old.getEphemeralOwner()));
            }
            String epoch = checkEpochIsCzxid(b);
            waitFor("broker " + k + " to log that it resigned", Duration.ofSeconds(15), note ->
                    count(b.logText(), "Resigned") > resignedBefore ? Boolean.TRUE : null);
            String states = waitPartitions("every partition's ISR back to 2 replicas", bootstrapAll(), Duration.ofSeconds(60),
                    (x, r) -> new TreeSet<>(ints(x.get("isr"))).equals(new TreeSet<>(List.of(0, 1))),
                    (pi, r) -> pi.isr().size() == 2);
            Integer ctl = controllerInZk(new Stat());
            if (ctl == null || ctl != s || controllerEpochInZk() != epochAfter) {
                throw new CheckFailed(String.format("controller moved again: /controller %s, epoch %d (expected %d, %d)",
                        ctl, controllerEpochInZk(), s, epochAfter));
            }
            controllerEpoch = epochAfter;
            return String.format("paused controller %d; broker %d took over %.1fs later (epoch %d -> %d); after SIGCONT "
                    + "broker %d resigned and registered again %.1fs later in session %s (was %s); %s; ISR back: %s",
                    k, s, tookOver, epochBefore, epochAfter, k, back, hex(st.getEphemeralOwner()),
                    hex(old.getEphemeralOwner()), epoch, states);
        });

        runCase("controlled_shutdown", List.of("broker_rejoins"), () -> {
            Integer k = controllerInZk(new Stat());
            if (k == null) {
                throw new CheckFailed("no /controller");
            }
            int n = 1 - k;
            List<String> out = new ArrayList<>();
            // The non-controller first: a controlled shutdown through the controller,
            // then its ZooKeeper session is closed, which deletes its ephemerals at once.
            for (int id : new int[] {n, k}) {
                Broker b = broker(id);
                ensureAlive(b);
                long t0 = System.nanoTime();
                if (!b.stop(Duration.ofSeconds(60))) {
                    throw new CheckFailed("broker " + id + " did not shut down within 60s of SIGTERM; last log lines:\n"
                            + b.logTail(20));
                }
                double exitAfter = secondsSince(t0);
                long t1 = System.nanoTime();
                // Well under the 6 s session timeout: closeSession, not expiry.
                waitFor("/brokers/ids/" + id + " to go with the closed session", Duration.ofSeconds(3), note -> {
                    note.append("/brokers/ids ").append(brokerIds());
                    return data("/brokers/ids/" + id, new Stat()) == null ? Boolean.TRUE : null;
                });
                String text = b.logText();
                if (!text.contains("shut down completed")) {
                    throw new CheckFailed("broker " + id + " log has no 'shut down completed'");
                }
                if (id == n) {
                    if (!text.contains("Controlled shutdown request returned successfully")) {
                        throw new CheckFailed("broker " + id + "'s controlled shutdown did not succeed; log lines:\n"
                                + text.lines().filter(l -> l.contains("ontrolled shutdown")).limit(10)
                                    .reduce("", (a, l) -> a + l + "\n"));
                    }
                    Map<Integer, JsonNode> states = waitFor("every partition led by broker " + k, Duration.ofSeconds(15), note -> {
                        Map<Integer, JsonNode> m = partitionStates();
                        note.append(m);
                        return m.values().stream().allMatch(st -> st != null && st.path("leader").asInt(-1) == k) ? m : null;
                    });
                    out.add(String.format("broker %d: controlled shutdown, exited %.1fs after SIGTERM, registration gone "
                            + "%.1fs later, leaders moved to %d", id, exitAfter, secondsSince(t1), k));
                } else {
                    waitFor("/controller to go", Duration.ofSeconds(3), note -> data("/controller", new Stat()) == null ? Boolean.TRUE : null);
                    out.add(String.format("controller %d: exited %.1fs after SIGTERM, registration and /controller gone %.1fs later",
                            id, exitAfter, secondsSince(t1)));
                }
            }
            List<Integer> ids = brokerIds();
            if (!ids.isEmpty()) {
                throw new CheckFailed("/brokers/ids still " + ids);
            }
            return String.join("; ", out);
        });

        runCase("no_connections_leaked", List.of(), () -> {
            // With every broker gone (closed, killed or expired sessions), the server must not
            // list any of their connections any more: 4lw `cons` shows one session, the
            // driver's. A connection left behind still counts against maxClientCnxns
            // (60 per address by default), so brokers that reconnect after session
            // expiries would eventually be refused.
            for (Broker b : brokers) {
                b.kill();
            }
            String mine = hex(zk.getSessionId());
            String[] listing = {""};
            Set<String> sids = waitFor("4lw cons to list only the driver's session " + mine, Duration.ofSeconds(15), note -> {
                listing[0] = fourLetterWord("cons");
                Set<String> found = new TreeSet<>();
                Matcher m = CONS_SID.matcher(listing[0]);
                while (m.find()) {
                    found.add(m.group(1).toLowerCase());
                }
                note.append("sessions in cons ").append(found).append("; cons:\n").append(listing[0].strip());
                return found.equals(Set.of(mine)) ? found : null;
            });
            return "cons lists sessions " + sids + " only";
        });
    }

    /** Sends a four-letter word to the server under test, returns its answer. */
    String fourLetterWord(String word) throws IOException {
        String host = zkHost.substring(0, zkHost.lastIndexOf(':'));
        try (java.net.Socket sock = new java.net.Socket(host, zkPort)) {
            sock.setSoTimeout(5000);
            sock.getOutputStream().write(word.getBytes(StandardCharsets.US_ASCII));
            sock.getOutputStream().flush();
            return new String(sock.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    static final Pattern CONS_SID = Pattern.compile("sid=(0x[0-9a-fA-F]+)");

    void shutdown() {
        for (Broker b : brokers) {
            try {
                if (b != null) {
                    b.kill();
                }
            } catch (Exception e) {
                say("cannot kill broker %d: %s", b.id, e);
            }
        }
        try {
            if (zk != null) {
                zk.close(5_000);
            }
        } catch (Exception e) {
            // ignore
        }
    }

    // --------------------------------------------------------------- main --

    public static void main(String[] args) throws Exception {
        Properties log4j = new Properties();
        log4j.put("log4j.rootLogger", "WARN, stderr");
        log4j.put("log4j.appender.stderr", "org.apache.log4j.ConsoleAppender");
        log4j.put("log4j.appender.stderr.Target", "System.err");
        log4j.put("log4j.appender.stderr.layout", "org.apache.log4j.PatternLayout");
        log4j.put("log4j.appender.stderr.layout.ConversionPattern", "[%d] %p [driver] %m (%c)%n");
        PropertyConfigurator.configure(log4j);

        Map<String, String> a = new LinkedHashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            a.put(args[i], args[i + 1]);
        }
        for (String req : List.of("--zk", "--work-dir", "--classpath-file", "--results")) {
            if (!a.containsKey(req)) {
                System.err.println("usage: KafkaCompat --zk HOST:PORT --work-dir DIR --classpath-file F --results F.json");
                System.exit(2);
            }
        }
        Path work = Path.of(a.get("--work-dir")).toAbsolutePath();
        Files.createDirectories(work);
        String cp = Files.readString(Path.of(a.get("--classpath-file"))).trim();
        KafkaCompat k = new KafkaCompat(a.get("--zk"), work, cp, Path.of(a.get("--results")).toAbsolutePath());
        Runtime.getRuntime().addShutdownHook(new Thread(k::shutdown));
        String fatal = null;
        try {
            k.run();
        } catch (Throwable e) {
            fatal = e.toString();
            say("driver error: %s", fatal);
            e.printStackTrace();
        } finally {
            k.shutdown();
        }
        long failed = k.cases.stream().filter(c -> !"passed".equals(c.get("status").asText())).count();
        k.writeResults(true, fatal);
        say("%d cases: %d passed, %d failed", k.cases.size(), k.cases.size() - failed, failed);
        System.exit(fatal != null ? 2 : failed > 0 ? 1 : 0);
    }
}
