"""larder: a pylibmc-compatible memcached client on larder's Rust core.

``larder.Client`` takes pylibmc's arguments, methods, behaviors, values and exceptions, so a
program written for pylibmc works by changing its import. Unlike pylibmc's, one client is
safe to share between threads: it pools its connections inside and releases the GIL around
every network wait. ``ClientPool`` and ``ThreadMappedPool`` are kept for programs that use
them. ``larder.AsyncClient`` has the same methods as coroutines, for asyncio;
``larder.dogpile`` is a dogpile.cache backend.
"""

import functools

from . import _larder
from ._larder import (
    AllocationError,
    BadKeyProvided,
    CacheMiss,
    ClientError,
    ConnectionBindError,
    ConnectionError,
    DataDoesNotExist,
    DataExists,
    Error,
    Failure,
    FetchNotFinished,
    HostLookupError,
    InvalidHostProtocolError,
    MemcachedError,
    NoServers,
    NotFound,
    NotSupportedError,
    ProtocolError,
    ReadError,
    ServerDead,
    ServerDown,
    ServerError,
    SocketCreateError,
    SomeErrors,
    TooBig,
    UnixSocketError,
    UnknownReadFailure,
    UnknownStatKey,
    WriteError,
    __version__,
    all_behaviors,
    all_callbacks,
    distributions,
    exceptions,
    hashers,
    server_type_tcp,
    server_type_udp,
    server_type_unix,
    support_compression,
    support_sasl,
)
from .pools import ClientPool, ThreadMappedPool

_MISS = object()


class BehaviorDict(dict):
    """A client's behaviors; setting an item (or ``update``) writes through to the client."""

    def __init__(self, client, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.client = client

    def __setitem__(self, name, value):
        self.client.set_behaviors({name: value})
        super().__setitem__(name, value)

    def update(self, other=(), **kwargs):
        changes = dict(other, **kwargs)
        self.client.set_behaviors(changes)
        super().update(changes)


class _Face:
    """What both clients add to their native half: pylibmc's constructor, ``repr`` and the
    ``behaviors`` mapping."""

    def __init__(self, servers, behaviors=None, binary=False, username=None, password=None):
        servers = list(servers) if not isinstance(servers, (str, bytes)) else servers
        self._configure(servers, behaviors, binary, username, password)
        self.binary = binary
        self.addresses = list(servers) if isinstance(servers, list) else [servers]

    def __repr__(self):
        return f"{type(self).__name__}({self.addresses!r}, binary={self.binary!r})"

    def __str__(self):
        addrs = ", ".join(map(str, self.addresses))
        return f"<{type(self).__name__} for {addrs}, binary={self.binary!r}>"

    def get_behaviors(self):
        """The behaviors, as a dict that writes changes through to this client."""
        return BehaviorDict(self, super().get_behaviors())

    def _set_behaviors(self, behaviors):
        self.set_behaviors(behaviors)

    behaviors = property(get_behaviors, _set_behaviors)

    @property
    def behaviours(self):
        raise AttributeError("nobody uses british spellings")

    def clone(self):
        """A client with the same settings (sharing this one's connections)."""
        twin = super().clone()
        twin.addresses = list(self.addresses)
        twin.binary = self.binary
        return twin


class Client(_Face, _larder.Client):
    """A memcached client with pylibmc's API, safe to share between threads.

    ``servers`` is a list of ``"host[:port[:weight]]"``, ``"[v6addr]:port"`` or Unix socket
    paths; ``behaviors`` takes pylibmc's names. ``binary=True`` is accepted: keys holding
    spaces or control bytes then work (they travel base64 in memcached's meta protocol).
    """

    def __getitem__(self, key):
        value = self.get(key, _MISS)
        if value is _MISS:
            raise KeyError(key)
        return value

    def __setitem__(self, key, value):
        if not self.set(key, value):
            raise KeyError(f"failed setting {key!r}")

    def __delitem__(self, key):
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key):
        return self.get(key, _MISS) is not _MISS


# The methods that ask a server: coroutines on AsyncClient.
_NETWORK_METHODS = (
    "get", "gets", "set", "add", "replace", "append", "prepend", "cas", "delete",
    "delete_cas", "incr", "decr", "touch", "get_multi", "set_multi", "add_multi",
    "delete_multi", "incr_multi", "flush_all", "get_stats",
)


def _coroutine(native):
    @functools.wraps(native)
    async def method(self, *args, **kwargs):
        return await native(self, *args, **kwargs)

    return method


class AsyncClient(_Face, _larder.AsyncClient):
    """``larder.Client`` for asyncio: the same arguments, and the same methods as coroutines
    (``await mc.get("k")``), with the same values, behaviors and exceptions.

    One client serves any number of concurrent tasks (and event loops). Cancelling a task
    mid-call is safe: the connection it was using is closed, never reused out of step.
    ``clone``, ``behaviors``, ``hash``, ``serialize``, ``deserialize`` and ``disconnect_all``
    ask no server and stay plain methods; there is no mapping protocol (``mc["k"]`` cannot
    await).
    """


for _name in _NETWORK_METHODS:
    setattr(AsyncClient, _name, _coroutine(getattr(_larder.AsyncClient, _name)))
del _name


__all__ = [
    "Client",
    "AsyncClient",
    "ClientPool",
    "ThreadMappedPool",
    "BehaviorDict",
    "__version__",
    "hashers",
    "distributions",
    "all_behaviors",
    "all_callbacks",
    "support_sasl",
    "support_compression",
] + [name for name, _ in exceptions] + ["MemcachedError", "exceptions"]
