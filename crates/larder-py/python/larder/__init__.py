"""larder: a pylibmc-compatible memcached client on larder's Rust core."""
from ._larder import __version__

__all__ = ["__version__"]
