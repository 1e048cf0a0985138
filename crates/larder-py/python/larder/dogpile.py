"""A dogpile.cache backend on larder, registered as ``"larder.memcached"``::

    region = make_region().configure(
        "larder.memcached",
        expiration_time=3600,
        arguments={"url": ["127.0.0.1:11211"], "distributed_lock": True},
    )

It takes the arguments of dogpile's ``dogpile.cache.pylibmc`` backend and stores values as
that backend does (pickled by the client, pylibmc's flags), so processes on either read each
other's entries. One ``larder.Client`` serves every thread (dogpile's memcached backends keep
one client per thread because theirs are not thread-safe); a forked child makes its own.

With ``distributed_lock=True`` the dogpile lock is a memcached entry (:class:`LarderLock`):
held by one process on any host, freed by a crashed holder's expiry, released by token.
"""

import math
import os
import random
import secrets
import threading
import time
import warnings
import weakref

from dogpile.cache.api import NO_VALUE, CacheBackend, CacheMutex
from dogpile.cache.region import register_backend

from . import Client

# Registered here too, for installs that do not read entry points.
register_backend("larder.memcached", "larder.dogpile", "LarderBackend")

#: How long, in seconds, a distributed lock outlives a holder that never releases it.
DEFAULT_LOCK_TIMEOUT = 30

_ARGUMENTS = frozenset(
    {
        "url",
        "binary",
        "behaviors",
        "memcached_expire_time",
        "min_compress_len",
        "distributed_lock",
        "lock_timeout",
    }
)

# The first and longest pause between tries of a lock someone else holds.
_FIRST_PAUSE = 0.001
_LONGEST_PAUSE = 0.05


class LarderLock(CacheMutex):
    """dogpile's lock for one key, held in memcached under ``"_lock" + key`` (the name
    dogpile's own memcached lock uses, so processes on either exclude each other).

    ``acquire`` is memcached ``add`` of a random token: atomic, only one client creates the
    entry. The entry expires after ``timeout`` seconds (0: never), so a holder that crashed
    frees the key then. ``release`` reads the entry with ``gets`` and, only when it still
    holds this holder's token, deletes it with ``delete_cas``: the server deletes it only if
    nobody changed it since that read, so a lock that lapsed and was re-taken is never freed
    by its late first holder.

    dogpile shares one lock object per key among a process's threads; each thread's token is
    kept apart. A release from a thread that took no lock (dogpile's
    ``async_creation_runner`` hands the lock to another thread) releases the oldest held.
    """

    def __init__(self, client_fn, key, timeout):
        self._client_fn = client_fn
        self.key = "_lock" + key
        # memcached counts whole seconds and may expire an entry up to a second early:
        # one second more keeps the lock at least `timeout` long.
        self._time = 0 if timeout == 0 else math.ceil(timeout) + 1
        self._tokens = {}
        self._tokens_guard = threading.Lock()

    def acquire(self, wait=True):
        """Takes the lock: ``True`` when taken; ``False`` when held elsewhere and ``wait`` is
        false, else tries again (backing off from 1 ms to 50 ms) until it is taken."""
        client = self._client_fn()
        token = secrets.token_hex(16).encode()
        pause = _FIRST_PAUSE
        while not client.add(self.key, token, self._time):
            if pause == _FIRST_PAUSE:
                # `add` answers a key the client refuses to send as "not added" too: a
                # `get` raises for it, so a bad key fails instead of waiting forever.
                client.get(self.key)
            if not wait:
                return False
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, _LONGEST_PAUSE)
        with self._tokens_guard:
            self._tokens[threading.get_ident()] = token
        return True

    def release(self):
        """Frees the lock if it is still this holder's (``RuntimeError`` if none is held)."""
        with self._tokens_guard:
            token = self._tokens.pop(threading.get_ident(), None)
            if token is None and self._tokens:
                token = self._tokens.pop(next(iter(self._tokens)))
        if token is None:
            raise RuntimeError(f"release of {self.key!r}, which this process does not hold")
        client = self._client_fn()
        value, cas = client.gets(self.key)
        if value == token:
            client.delete_cas(self.key, cas)

    def locked(self):
        """Whether anyone holds the lock."""
        return self._client_fn().get(self.key) is not None

    def __repr__(self):
        return f"LarderLock({self.key!r})"


# Backends whose clients a forked child must not share with its parent.
_live_backends = weakref.WeakSet()


def _after_fork_in_child():
    for backend in list(_live_backends):
        backend._connect()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class LarderBackend(CacheBackend):
    """The ``"larder.memcached"`` backend. Arguments, as ``dogpile.cache.pylibmc``'s:

    - ``url``: a server spec or a list of them (``"host[:port[:weight]]"``, a socket path);
      the only one required.
    - ``binary``, ``behaviors``: ``larder.Client``'s (pylibmc's names).
    - ``memcached_expire_time``: the memcached expiry (``time``) of every write, in seconds.
      Unlike dogpile's ``expiration_time``, the value is gone after it: make it longer.
    - ``min_compress_len``: values at least this long are zlib-compressed.
    - ``distributed_lock``: ``True`` to use :class:`LarderLock` as dogpile's lock, for
      processes sharing the servers; else dogpile locks per process.
    - ``lock_timeout``: seconds after which a held distributed lock expires (default 30; 0
      keeps dogpile's "never", which a crashed holder leaves held for good).

    Arguments it does not know are ignored, as dogpile's backends do (one configuration may
    serve several backends), with a warning naming them: a misspelt ``distributed_lock``
    would otherwise leave the lock per process unnoticed.
    """

    def __init__(self, arguments):
        unknown = sorted(set(arguments) - _ARGUMENTS)
        if unknown:
            warnings.warn(
                f"larder.memcached ignores unknown arguments: {', '.join(unknown)} "
                f"(known: {', '.join(sorted(_ARGUMENTS))})",
                stacklevel=3,
            )
        if "url" not in arguments:
            raise ValueError("larder.memcached needs a 'url' argument (a server or a list)")
        url = arguments["url"]
        self.url = list(url) if isinstance(url, (list, tuple)) else [url]
        self.binary = bool(arguments.get("binary", False))
        self.behaviors = dict(arguments.get("behaviors") or {})
        self.distributed_lock = bool(arguments.get("distributed_lock", False))
        timeout = arguments.get("lock_timeout", DEFAULT_LOCK_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError(f"lock_timeout must be a number of seconds >= 0, not {timeout!r}")
        self.lock_timeout = timeout
        self.set_arguments = {}
        if "memcached_expire_time" in arguments:
            self.set_arguments["time"] = arguments["memcached_expire_time"]
        if "min_compress_len" in arguments:
            self.set_arguments["min_compress_len"] = arguments["min_compress_len"]
        self._connect()
        _live_backends.add(self)

    def _connect(self):
        """Makes this process's clients (bad servers or behaviors raise here, at configure)."""
        self._client = Client(self.url, behaviors=self.behaviors, binary=self.binary)
        # The lock reads its entry with gets, which needs the cas behavior.
        self._lock_client = (
            Client(self.url, behaviors={**self.behaviors, "cas": True}, binary=self.binary)
            if self.distributed_lock
            else None
        )

    @property
    def client(self):
        """The ``larder.Client`` (one for every thread)."""
        return self._client

    def has_lock_timeout(self):
        return self.distributed_lock and self.lock_timeout != 0

    def get_mutex(self, key):
        if not self.distributed_lock:
            return None
        return LarderLock(lambda: self._lock_client, key, self.lock_timeout)

    def get(self, key):
        return self._client.get(key, NO_VALUE)

    def get_multi(self, keys):
        keys = list(keys)
        if not keys:
            return []
        found = self._client.get_multi(keys)
        return [found.get(key, NO_VALUE) for key in keys]

    def set(self, key, value):
        self._client.set(key, value, **self.set_arguments)

    def set_multi(self, mapping):
        self._client.set_multi(dict(mapping), **self.set_arguments)

    def delete(self, key):
        self._client.delete(key)

    def delete_multi(self, keys):
        self._client.delete_multi(list(keys))
