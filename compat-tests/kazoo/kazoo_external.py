"""pytest plugin: run kazoo's own test suite against one external server.

kazoo's tests get their servers from kazoo.testing.harness.get_global_cluster(),
which normally launches a 3-node Apache ZooKeeper ensemble from a local
install. This plugin (loaded with ``-p kazoo_external``) replaces that
function with a stand-in for a single server that is already running at
``ZK_HOST`` (host:port), so the same tests can be pointed at Apache ZooKeeper
or at ferrokeeper.

The stand-in cannot stop, restart or reset the server and has only one
server, so the few tests that need that are skipped with a reason (SKIPS
below). If some other test tries such an operation anyway, it fails with
ExternalServerUnsupported rather than being skipped silently.

Environment:
  ZK_HOST        required, e.g. 127.0.0.1:22181
  ZK_SERVER_LOG  optional, the server's log file; its tail is shown when a
                 test fails (kazoo's conftest asks the cluster for logs)
"""

import os
import pathlib
import warnings

import pytest

ENV_HOST = "ZK_HOST"
ENV_LOG = "ZK_SERVER_LOG"

_STOP = "stops and restarts the server (the external server is not under the test's control)"
_MULTI = "needs a 3-server ensemble (the external harness has one server)"
_TLS = "needs a TLS client port and the certificates kazoo's managed cluster generates"

# Tests skipped for the external single server, keyed by where the test
# function is defined ("module:Class.function"); subclasses that inherit the
# test (e.g. the gevent and eventlet client test classes) are skipped too.
SKIPS = {
    "kazoo.tests.test_client:TestClient.test_update_host_list":
        _STOP + "; " + _MULTI,
    "kazoo.tests.test_client:TestClient.test_request_queuing_session_recovered":
        _STOP,
    "kazoo.tests.test_client:TestClient.test_request_queuing_session_expired":
        _STOP,
    "kazoo.tests.test_connection:TestReadOnlyMode.test_read_only":
        _MULTI + "; stops 2 of its 3 servers to force read-only mode",
    "kazoo.tests.test_client:TestSSLClient.test_create":
        _TLS,
}


class ExternalServerUnsupported(RuntimeError):
    """A test asked the stand-in cluster for something it cannot do."""


class ExternalServer:
    """Stands in for kazoo.testing.common.ManagedZooKeeper."""

    def __init__(self, host, port, log_path=None):
        self.host = host
        self._port = port
        self._log_path = log_path

    @property
    def address(self):
        return "%s:%s" % (self.host, self._port)

    @property
    def client_port(self):
        return self._port

    @property
    def running(self):
        return True

    @property
    def secure_address(self):
        raise ExternalServerUnsupported("external server has no TLS client port")

    @property
    def secure_client_port(self):
        raise ExternalServerUnsupported("external server has no TLS client port")

    def run(self):
        # ManagedZooKeeper.run() is a no-op when the server already runs.
        return

    def stop(self):
        raise ExternalServerUnsupported("cannot stop the external server")

    def reset(self):
        raise ExternalServerUnsupported("cannot reset the external server")

    def destroy(self):
        raise ExternalServerUnsupported("cannot destroy the external server")

    def get_logs(self, num_lines=100):
        if not self._log_path:
            return []
        path = pathlib.Path(self._log_path)
        if not path.exists():
            return []
        with path.open("r", errors="replace") as fh:
            return fh.readlines()[-num_lines:]


class ExternalCluster:
    """Stands in for kazoo.testing.common.ZookeeperCluster (one server)."""

    def __init__(self, server):
        self._servers = [server]

    def __getitem__(self, k):
        if k not in (0, -1):
            raise ExternalServerUnsupported(
                "test asked for server %r; the external harness has one server" % (k,)
            )
        return self._servers[0]

    def __iter__(self):
        return iter(self._servers)

    def __len__(self):
        return len(self._servers)

    # The harness calls start() when a server is not running (never here) and
    # terminate() after every test class (KazooTestCase.tearDownClass) and in
    # its connection-retry loop: both are no-ops for an external server.
    def start(self):
        return

    def terminate(self):
        return

    def stop(self):
        raise ExternalServerUnsupported("cannot stop the external server")

    def reset(self):
        raise ExternalServerUnsupported("cannot reset the external server")

    def get_logs(self):
        return self._servers[0].get_logs()

    def get_ssl_client_configuration(self):
        raise ExternalServerUnsupported("external server has no TLS client port")


_CLUSTER = None


def get_external_cluster():
    global _CLUSTER
    if _CLUSTER is None:
        hostport = os.environ.get(ENV_HOST, "")
        host, sep, port = hostport.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise pytest.UsageError(
                "%s must be set to host:port of the server under test" % ENV_HOST
            )
        _CLUSTER = ExternalCluster(
            ExternalServer(host, int(port), os.environ.get(ENV_LOG))
        )
    return _CLUSTER


def pytest_configure(config):
    if not os.environ.get(ENV_HOST):
        raise pytest.UsageError(
            "kazoo_external: set %s=host:port of the server under test" % ENV_HOST
        )
    import kazoo.testing.harness as harness

    harness.get_global_cluster = get_external_cluster
    config.addinivalue_line(
        "markers", "external_skip: skipped by compat-tests/kazoo/kazoo_external.py"
    )


def _defining_key(item):
    obj = getattr(item, "obj", None)
    func = getattr(obj, "__func__", obj)
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module or not qualname:
        return None
    return "%s:%s" % (module, qualname)


def pytest_collection_modifyitems(session, config, items):
    seen = set()
    for item in items:
        key = _defining_key(item)
        reason = SKIPS.get(key)
        if reason:
            seen.add(key)
            item.add_marker(pytest.mark.skip(reason="external server: " + reason))
    # A stale entry (test renamed in a newer kazoo) should not go unnoticed.
    # Only checked when whole modules are collected, not for -k/-x subsets.
    if not config.getoption("keyword") and not config.getoption("markexpr"):
        collected = {_defining_key(i) for i in items}
        for key in SKIPS:
            module = key.split(":")[0]
            if any(k and k.startswith(module + ":") for k in collected) and key not in seen:
                warnings.warn(
                    pytest.PytestConfigWarning(
                        "kazoo_external: skip entry %s matched no test" % key
                    )
                )


def pytest_report_header(config):
    return "kazoo_external: tests run against the external server at %s" % (
        os.environ.get(ENV_HOST),
    )
