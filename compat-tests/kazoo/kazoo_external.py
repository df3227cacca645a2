"""pytest plugin: run kazoo's own test suite against external servers.

kazoo's tests get their servers from kazoo.testing.harness.get_global_cluster(),
which normally launches a 3-node Apache ZooKeeper ensemble from a local
install. This plugin (loaded with ``-p kazoo_external``) replaces that
function with a stand-in for the server(s) already running at ``ZK_HOST``,
so the same tests can be pointed at Apache ZooKeeper or at ferrokeeper: one
server (the kazoo suite) or every member of an ensemble (the rolling suite,
whose own plugin kills and restarts members between tests).

The stand-in cannot stop, restart or reset a server, and a single server is
not an ensemble, so the few tests that need that are skipped with a reason
(SKIPS below). If some other test tries such an operation anyway, it fails
with ExternalServerUnsupported rather than being skipped silently.

Environment:
  ZK_HOST        required: host:port, or host:port,host:port,... for an
                 ensemble (cluster[0] is the first); e.g. 127.0.0.1:22181
  ZK_SERVER_LOG  optional, the servers' log files (os.pathsep between them,
                 in ZK_HOST's order); their tails are shown when a test fails
                 (kazoo's conftest asks the cluster for logs)
"""

import os
import pathlib
import warnings

import pytest

ENV_HOST = "ZK_HOST"
ENV_LOG = "ZK_SERVER_LOG"

_STOP = "stops and restarts the server (the external server is not under the test's control)"
_MULTI = "needs a 3-server ensemble (the external harness has one server)"
_STOP2 = "stops 2 of its 3 servers to force read-only mode (the external servers are not under the test's control)"
_TLS = "needs a TLS client port and the certificates kazoo's managed cluster generates"

# Tests skipped for the external server(s), keyed by where the test function
# is defined ("module:Class.function"); subclasses that inherit the test (e.g.
# the gevent and eventlet client test classes) are skipped too. A reason is a
# list of parts; _MULTI applies only when ZK_HOST names fewer than 3 servers.
SKIPS = {
    "kazoo.tests.test_client:TestClient.test_update_host_list":
        [_STOP, _MULTI],
    "kazoo.tests.test_client:TestClient.test_request_queuing_session_recovered":
        [_STOP],
    "kazoo.tests.test_client:TestClient.test_request_queuing_session_expired":
        [_STOP],
    "kazoo.tests.test_connection:TestReadOnlyMode.test_read_only":
        [_MULTI, _STOP2],
    "kazoo.tests.test_client:TestSSLClient.test_create":
        [_TLS],
}


def skip_reason(key, servers):
    """The skip reason for a test (by its defining key) with this many servers, or ''."""
    return "; ".join(p for p in SKIPS.get(key, ()) if not (p == _MULTI and servers >= 3))


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
    """Stands in for kazoo.testing.common.ZookeeperCluster (one server or more)."""

    def __init__(self, servers):
        self._servers = list(servers)

    def __getitem__(self, k):
        if not isinstance(k, int) or not -len(self._servers) <= k < len(self._servers):
            raise ExternalServerUnsupported(
                "test asked for server %r; the external harness has %d" % (k, len(self._servers))
            )
        return self._servers[k]

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
        if len(self._servers) == 1:
            return self._servers[0].get_logs()
        out = []
        for s in self._servers:
            out.append("==> log of the server at %s <==\n" % s.address)
            out.extend(s.get_logs())
        return out

    def get_ssl_client_configuration(self):
        raise ExternalServerUnsupported("external server has no TLS client port")


_CLUSTER = None


def get_external_cluster():
    global _CLUSTER
    if _CLUSTER is None:
        logs = [p for p in os.environ.get(ENV_LOG, "").split(os.pathsep) if p]
        servers = []
        for i, hostport in enumerate(os.environ.get(ENV_HOST, "").split(",")):
            host, sep, port = hostport.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise pytest.UsageError(
                    "%s must be host:port[,host:port...] of the server(s) under test" % ENV_HOST
                )
            servers.append(ExternalServer(host, int(port), logs[i] if i < len(logs) else None))
        _CLUSTER = ExternalCluster(servers)
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
    servers = len(get_external_cluster())
    for item in items:
        key = _defining_key(item)
        reason = skip_reason(key, servers)
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
    return "kazoo_external: tests run against the external server(s) at %s" % (
        os.environ.get(ENV_HOST),
    )
