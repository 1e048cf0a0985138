"""Helpers for running the same call on pylibmc and on larder and comparing outcomes."""

import socket


def outcome(call):
    """("ok", result) or ("raises", exception class name) of `call()`."""
    try:
        return ("ok", call())
    except Exception as e:  # noqa: BLE001 - the outcome is what is compared
        return ("raises", type(e).__name__)


def raw_set(server, key, flags, data):
    """Stores `data` with `flags` under `key` with memcached's text `set`, bypassing clients."""
    line = b"set %s %d 0 %d\r\n%s\r\n" % (key, flags, len(data), data)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(line)
        assert s.recv(100) == b"STORED\r\n"
