"""One larder.Client shared by many threads, with no pool: values written by each thread
encode their key, so any mix-up between threads or connections shows as a wrong value."""

import socket
import threading
import time

import larder
import pytest

THREADS = 16
ROUNDS = 150


def test_sixteen_threads_share_one_client(servers):
    mc = larder.Client([s.spec for s in servers], behaviors={"ketama": True})
    errors = []
    start = threading.Barrier(THREADS)

    def work(t):
        try:
            start.wait()
            for i in range(ROUNDS):
                key = f"t{t}:k{i}"
                value = f"{key}|" + "x" * (i % 50)
                assert mc.set(key, value)
                assert mc.get(key) == value
                assert mc.set(f"t{t}:n{i}", i)
                batch = [f"t{t}:k{j}" for j in range(max(0, i - 9), i + 1)]
                got = mc.get_multi(batch)
                assert got == {k: f"{k}|" + "x" * (int(k.split("k")[-1]) % 50) for k in batch}
                assert mc.incr(f"t{t}:count") == i + 1 if i else mc.set(f"t{t}:count", 1)
                if i % 10 == 0:
                    assert mc.set_multi({f"t{t}:m{i}": [t, i], f"t{t}:m{i + 1}": b"raw"}) == []
                    assert mc.get_multi([f"t{t}:m{i}", f"t{t}:m{i + 1}"]) == {
                        f"t{t}:m{i}": [t, i],
                        f"t{t}:m{i + 1}": b"raw",
                    }
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {t}: {e!r}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert mc.get_multi([f"t{t}:count" for t in range(THREADS)]) == {
        f"t{t}:count": ROUNDS for t in range(THREADS)
    }


def test_network_waits_release_the_gil():
    # A server that accepts and never answers: one thread waits on it for 1 s while the main
    # thread keeps noting the time. Had the wait held the GIL, the main thread could run only
    # just before or just after it (a switch interval each), never well inside it.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        mc = larder.Client(
            ["127.0.0.1:%d" % listener.getsockname()[1]], behaviors={"receive_timeout": 1_000_000}
        )
        started = []
        done = threading.Event()
        seen = []

        def wait_on_server():
            started.append(time.monotonic())
            with pytest.raises(larder.Error, match="timed out"):
                mc.get("k")
            done.set()

        t = threading.Thread(target=wait_on_server)
        t.start()
        while not done.is_set():
            seen.append(time.monotonic())
        t.join()
        inside = [s for s in seen if started[0] + 0.2 < s < started[0] + 0.8]
        assert inside


def test_module_declares_free_threading_support():
    # The extension is built with gil_used = false: a free-threaded interpreter keeps the GIL
    # off when importing it. On a GIL build the flag is not observable, so check the build.
    import sys

    if hasattr(sys, "_is_gil_enabled") and not sys._is_gil_enabled():
        import larder._larder  # noqa: F401

        assert not sys._is_gil_enabled()
    else:
        pytest.skip("not a free-threaded interpreter")
