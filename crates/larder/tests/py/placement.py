"""Oracle for key placement: asks a real Python memcached client which server holds each key.

Reads one JSON object on stdin:
  {"client": "pylibmc" | "pymemcache" | "python-memcached",
   "servers": [...],            # the client's own server spec strings
   "weights": [...],            # python-memcached only (one per server)
   "behaviors": {...},          # pylibmc only
   "dead": [index, ...],        # python-memcached only: servers that refuse connections
   "keys": [...]}
Prints a JSON list: the server index for each key (null when none). No network is used.
"""
import json
import sys


def pylibmc_indices(req):
    import pylibmc

    client = pylibmc.Client(req["servers"], behaviors=req.get("behaviors", {}))
    return [client.hash(k) for k in req["keys"]]


def pymemcache_indices(req):
    from pymemcache.client.hash import HashClient

    servers = []
    for spec in req["servers"]:
        if spec.startswith("/"):
            servers.append(spec)
        else:
            host, port = spec.rsplit(":", 1)
            servers.append((host, int(port)))
    client = HashClient(servers, connect_timeout=0.01, timeout=0.01, allow_unicode_keys=True)
    names = []
    for s in servers:
        names.append(s if isinstance(s, str) else "%s:%s" % s)
    return [names.index(client.hasher.get_node(k)) for k in req["keys"]]


def python_memcached_indices(req):
    import memcache

    dead = set(req.get("dead", []))
    specs = req["servers"]
    weights = req.get("weights") or [1] * len(specs)
    client = memcache.Client(list(zip(specs, weights)))
    live = {id(s): i not in dead for i, s in enumerate(client.servers)}
    memcache._Host.connect = lambda self: live[id(self)]
    out = []
    for k in req["keys"]:
        server, _ = client._get_server(k.encode())
        out.append(None if server is None else client.servers.index(server))
    return out


def main():
    req = json.load(sys.stdin)
    fn = {
        "pylibmc": pylibmc_indices,
        "pymemcache": pymemcache_indices,
        "python-memcached": python_memcached_indices,
    }[req["client"]]
    json.dump(fn(req), sys.stdout)


if __name__ == "__main__":
    main()
