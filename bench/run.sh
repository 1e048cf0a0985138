#!/usr/bin/env bash
# larder's memcached clients against pylibmc, pymemcache and the Rust `memcache` crate, in
# one run (crates/larder-bench/benches/vs_python.rs), then the client CPU per key of the
# 100-key multi-get, larder against bare sockets and pylibmc
# (crates/larder-bench/benches/cpu_per_key.rs). Installs the Python clients (and the
# libmemcached headers pylibmc builds against) when missing, then runs both.
# VS_PY_SECS sets the seconds per cell and round (default 0.3), VS_PY_ROUNDS the rounds (7);
# CPK_SECS the seconds per block (0.5), CPK_ROUNDS the rounds (7) of cpu_per_key, and
# CPK_CPU=N pins it (bench, servers, Python) to CPU N.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c "import pylibmc, pymemcache" >/dev/null 2>&1; then
  if [ ! -e /usr/include/libmemcached/memcached.h ]; then
    echo "installing: libmemcached-dev zlib1g-dev"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq libmemcached-dev zlib1g-dev >/dev/null
  fi
  echo "installing: pylibmc pymemcache"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    "pylibmc==1.6.3" "pymemcache==4.0.0"
fi

cargo bench -p larder-bench --bench vs_python
cargo bench -p larder-bench --bench cpu_per_key
