"""pylibmc's client pools, for programs written against them.

``larder.Client`` is itself safe to share between threads, so new code needs no pool; these
keep pylibmc's semantics for code that reserves clients.
"""

import threading
from contextlib import contextmanager
from queue import Queue


class ClientPool(Queue):
    """A queue of clients: ``reserve()`` lends one for a ``with`` block.

    ``ClientPool(mc, n)`` fills the pool with ``n`` clones of ``mc``.
    """

    def __init__(self, mc=None, n_slots=0):
        super().__init__(n_slots)
        if mc is not None and n_slots:
            self.fill(mc, n_slots)

    @contextmanager
    def reserve(self, block=False):
        """Lends a client until the block ends.

        Raises ``queue.Empty`` when the pool is exhausted, unless ``block`` is true (then it
        waits for a client to come back).
        """
        mc = self.get(block)
        try:
            yield mc
        finally:
            self.put(mc)

    def fill(self, mc, n_slots):
        """Adds ``n_slots`` clones of ``mc``."""
        for _ in range(n_slots):
            self.put(mc.clone())


class ThreadMappedPool(dict):
    """One clone of ``master`` per thread, made on the thread's first ``reserve()``.

    A thread calls ``relinquish()`` before it ends, or its client stays in the map.
    """

    def __new__(cls, master):
        return super().__new__(cls)

    def __init__(self, master):
        super().__init__()
        self.master = master

    @property
    def current_key(self):
        """The key of the calling thread's client."""
        return threading.current_thread().ident

    @contextmanager
    def reserve(self):
        """Lends the calling thread its client (cloned from the master the first time)."""
        key = self.current_key
        mc = self.pop(key, None)
        if mc is None:
            mc = self.master.clone()
        try:
            yield mc
        finally:
            self[key] = mc

    def relinquish(self):
        """Forgets the calling thread's client and returns it (``None`` when it had none)."""
        return self.pop(self.current_key, None)
