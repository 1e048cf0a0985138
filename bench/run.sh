#!/usr/bin/env bash
# larder's memcached clients against pylibmc, pymemcache and the Rust `memcache` crate, in
# one run (crates/larder-bench/benches/vs_python.rs), then the client CPU per key of the
# 100-key multi-get, larder against bare sockets and pylibmc
# (crates/larder-bench/benches/cpu_per_key.rs), then larder's Python package against
# pylibmc and pymemcache (bench/python/vs_pylibmc.py, then its 1-thread get and set in
# pairs, bench/python/pairs.py), the package built into a temporary venv first. Installs the Python clients (and the libmemcached headers pylibmc builds
# against) when missing, then runs all three.
# VS_PY_SECS sets the seconds per cell and round (default 0.3), VS_PY_ROUNDS the rounds (7);
# CPK_SECS the seconds per block (0.5), CPK_ROUNDS the rounds (7) of cpu_per_key, and
# CPK_CPU=N pins it (bench, servers, Python) to CPU N; PYB_SECS (0.2), PYB_ROUNDS (15) and
# PYB_CPUS (a CPU list, unpinned by default) do the same for vs_pylibmc.py.
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

# The Python package, built as .ci/run builds it (the pinned maturin, no isolated build env,
# a release build in the workspace's target dir), into a venv that is removed afterwards.
venv_dir=$(mktemp -d)
trap 'rm -rf "$venv_dir"' EXIT
python3 -m venv --system-site-packages "$venv_dir/venv"
"$venv_dir/venv/bin/pip" install -q --disable-pip-version-check "maturin==1.16.0"
PATH="$venv_dir/venv/bin:$PATH" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" \
  "$venv_dir/venv/bin/pip" install -q --disable-pip-version-check --no-build-isolation \
  ./crates/larder-py
pyb_args=(--secs "${PYB_SECS:-0.2}" --rounds "${PYB_ROUNDS:-15}")
[ -z "${PYB_CPUS:-}" ] || pyb_args+=(--cpus "$PYB_CPUS")
"$venv_dir/venv/bin/python" bench/python/vs_pylibmc.py "${pyb_args[@]}"
"$venv_dir/venv/bin/python" bench/python/pairs.py
