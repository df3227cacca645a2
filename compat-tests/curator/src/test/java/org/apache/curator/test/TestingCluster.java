package org.apache.curator.test;

import java.io.Closeable;
import java.io.IOException;
import java.util.Collection;
import java.util.Map;
import org.opentest4j.TestAbortedException;

/**
 * Stand-in for curator-test's TestingCluster (see {@link TestingServer}): an
 * ensemble of in-process servers cannot be replaced by the one external
 * server under test, so building one aborts the test (reported as skipped).
 * Only the constructors exist; nothing else is ever reached.
 */
public class TestingCluster implements Closeable {
    private static TestAbortedException unsupported() {
        return new TestAbortedException("needs a TestingCluster (several in-process servers); "
                + "only the external server under test is available");
    }

    public TestingCluster(int instanceQty) {
        throw unsupported();
    }

    public TestingCluster(InstanceSpec... specs) {
        throw unsupported();
    }

    public TestingCluster(Collection<InstanceSpec> specs) {
        throw unsupported();
    }

    public TestingCluster(Map<InstanceSpec, Collection<InstanceSpec>> specs) {
        throw unsupported();
    }

    public void start() throws Exception {
        throw unsupported();
    }

    @Override
    public void close() throws IOException {
    }
}
