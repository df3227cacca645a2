package dev.ferrokeeper.compat.curator;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import org.junit.platform.engine.support.descriptor.MethodSource;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;

/**
 * The rolling-curator suite's hook between tests: before each test starts,
 * it asks the harness's controller (rolling/rolling_curator.py) whether to
 * kill or restart an ensemble member now, and waits until that is done.
 *
 * <p>Registered for every run through
 * {@code META-INF/services/org.junit.platform.launcher.TestExecutionListener},
 * it does nothing unless the system property {@code compat.rolling.control}
 * names the controller ({@code 127.0.0.1:PORT}); the curator suite never sets
 * it. When set, {@link #executionStarted} of every test (not of containers)
 * sends one line {@code before <class>#<method>} and blocks until the reply:
 * {@code ok} (the step, if one was due, is done: all running members serve),
 * or {@code fail <reason>}. The schedule (which test, which member) is the
 * controller's. JUnit calls this on the thread that runs the tests, before the
 * test's {@code @BeforeEach} methods and after the previous test's
 * {@code @AfterEach} methods and its executionFinished, so nothing of ours or
 * of Curator's tests is in flight while a member is killed. Launcher-registered
 * listeners come before Surefire's own, so the wait is not counted in the
 * test's time.
 *
 * <p>A failed step or an unreachable controller ends the test JVM at once
 * (status 3, {@link Runtime#halt}): the ensemble is not what the schedule
 * says, and every later result would be meaningless. Surefire then reports
 * the fork as crashed and the harness reports the controller's error.
 */
public final class RollingRestartListener implements TestExecutionListener {
    public static final String PROPERTY = "compat.rolling.control";
    static final int EXIT_STATUS = 3;
    /** A step waits at most 3 x 120 s on the controller's side (COMPAT_ROLLING_WAIT). */
    private static final int REPLY_TIMEOUT_MS = 900_000;
    private static final int CONNECT_TIMEOUT_MS = 10_000;

    // One connection per test JVM, whichever listener instance uses it.
    private static Socket socket;
    private static BufferedReader in;
    private static Writer out;

    @Override
    public void executionStarted(TestIdentifier id) {
        if (!id.isTest()) {
            return;
        }
        String control = System.getProperty(PROPERTY, "").trim();
        if (control.isEmpty()) {
            return;
        }
        String test = testId(id);
        String reply;
        synchronized (RollingRestartListener.class) {
            try {
                reply = ask(control, "before " + test);
            } catch (IOException | RuntimeException e) {
                reply = "fail controller " + control + ": " + e;
            }
        }
        if (!"ok".equals(reply)) {
            System.out.flush();
            System.err.println("[rolling] " + reply + " (before " + test + "); ending the test run, status "
                    + EXIT_STATUS);
            System.err.flush();
            Runtime.getRuntime().halt(EXIT_STATUS);
        }
    }

    private static String ask(String control, String line) throws IOException {
        if (socket == null) {
            int colon = control.lastIndexOf(':');
            Socket s = new Socket();
            s.connect(new InetSocketAddress(control.substring(0, colon),
                    Integer.parseInt(control.substring(colon + 1))), CONNECT_TIMEOUT_MS);
            s.setSoTimeout(REPLY_TIMEOUT_MS);
            in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
            out = new BufferedWriter(new OutputStreamWriter(s.getOutputStream(), StandardCharsets.UTF_8));
            socket = s;
        }
        out.write(line.replace('\n', ' ') + "\n");
        out.flush();
        String reply = in.readLine();
        if (reply == null) {
            throw new EOFException("the controller closed the connection");
        }
        return reply;
    }

    /** {@code <class>#<method>} as the suite's reports name tests, plus the invocation for templates. */
    static String testId(TestIdentifier id) {
        if (id.getSource().isPresent() && id.getSource().get() instanceof MethodSource) {
            MethodSource m = (MethodSource) id.getSource().get();
            String name = m.getClassName() + "#" + m.getMethodName();
            String legacy = id.getLegacyReportingName();
            // a @ParameterizedTest/@RepeatedTest invocation is reported as "method(args)[n]"
            return legacy.endsWith("]") && legacy.lastIndexOf('[') > 0
                    ? name + legacy.substring(legacy.lastIndexOf('[')) : name;
        }
        return id.getUniqueId();
    }
}
