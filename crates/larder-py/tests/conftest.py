"""Fixtures: memcached servers started for the test session (and stopped after it), flushed
before each test, and clients on them (larder's, and pylibmc's to compare with)."""

import os
import shutil
import socket
import subprocess
import time

import pytest

MEMCACHED = shutil.which("memcached")


def pytest_configure(config):
    # dogpile.cache's backend suites (test_dogpile.py) mark their slow tests with it.
    config.addinivalue_line("markers", "time_intensive: a slow test of dogpile.cache's suites")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Memcached:
    """One memcached process on a free local port."""

    def __init__(self, *extra):
        if MEMCACHED is None:
            pytest.skip("memcached is not installed")
        self.port = free_port()
        args = [MEMCACHED, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64"]
        if os.geteuid() == 0:
            args += ["-u", "root"]
        self.proc = subprocess.Popen(
            args + list(extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_ready()

    @property
    def spec(self):
        return f"127.0.0.1:{self.port}"

    def _wait_ready(self):
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"memcached exited: {self.proc.stderr.read().decode()}")
            try:
                # Connecting is not enough: another process may hold the port while ours
                # exits on its failed bind; the server must report our pid.
                if self.command(b"stats").find(b"STAT pid %d\r\n" % self.proc.pid) >= 0:
                    return
                raise OSError("the port is held by another process")
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def command(self, line):
        """Sends one text command line and returns the reply up to its terminator."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(line + b"\r\n")
            buf = b""
            while not buf.endswith((b"END\r\n", b"OK\r\n", b"EN\r\n", b"ERROR\r\n")) and not (
                buf.startswith(b"VA ") and buf.count(b"\r\n") >= 2
            ):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
            return buf

    def raw(self, key):
        """(flags, bytes) of `key` as stored on this server, or None (read with meta `mg`)."""
        reply = self.command(b"mg " + key + b" f v")
        if reply.startswith(b"EN"):
            return None
        head, _, rest = reply.partition(b"\r\n")
        parts = head.split()
        size = int(parts[1])
        flags = next(int(p[1:]) for p in parts[2:] if p.startswith(b"f"))
        return flags, rest[:size]

    def flush(self):
        assert self.command(b"flush_all") == b"OK\r\n"

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stderr.close()


@pytest.fixture(scope="session")
def memcacheds():
    servers = [Memcached() for _ in range(3)]
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture
def servers(memcacheds):
    """The three servers, flushed."""
    for s in memcacheds:
        s.flush()
    return memcacheds


@pytest.fixture
def server(servers):
    """One server, flushed."""
    return servers[0]


@pytest.fixture
def mc(server):
    import larder

    return larder.Client([server.spec])


@pytest.fixture
def pmc(server):
    pylibmc = pytest.importorskip("pylibmc")
    return pylibmc.Client([server.spec])


@pytest.fixture
def closed_port():
    """A local port nothing listens on."""
    return free_port()
