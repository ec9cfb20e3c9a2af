#!/usr/bin/env bash
# Set everything up and run the main job, on Debian 12 as root:
# install the dependencies, build and install the rock for Lua 5.4 with
# luarocks, start p0f on the loopback interface, make a local TCP
# connection, and print what the module returns for it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${P0F_NO_INSTALL:-0}" != 1 ]; then
  bash scripts/install-deps.sh
fi

# Debian's luarocks defaults to Lua 5.1; this project's main Lua is 5.4.
luarocks config --scope system lua_version 5.4 >/dev/null
luarocks make p0f-scm-1.rockspec >/tmp/p0f-demo-luarocks.log 2>&1 ||
  { cat /tmp/p0f-demo-luarocks.log; exit 1; }
rm -rf build.luarocks
echo "installed: $(command -v p0f-query), p0f.core for Lua 5.4"

dir=$(mktemp -d)
p0f -i lo -s "$dir/p0f.sock" >"$dir/p0f.log" 2>&1 &
p0f_pid=$!
cleanup() { kill "$p0f_pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 100); do
  grep -q "Entered main event loop" "$dir/p0f.log" && break
  sleep 0.05
done
echo "p0f $p0f_pid sniffing lo, API socket $dir/p0f.sock"

# A TCP handshake on 127.0.0.1 for p0f to see; p0f needs a moment to file it.
port=$((20000 + RANDOM % 20000))
for _ in $(seq 50); do
  nc -l 127.0.0.1 "$port" >/dev/null 2>&1 &
  sleep 0.1
  echo hello | nc -N 127.0.0.1 "$port" >/dev/null 2>&1 || true
  if p0f-query --socket "$dir/p0f.sock" 127.0.0.1 2>/dev/null | grep "status *ok" >/dev/null; then
    learned=1
    break
  fi
done
if [ -z "${learned:-}" ]; then
  echo "p0f did not fingerprint 127.0.0.1; its log:" >&2
  cat "$dir/p0f.log" >&2
  exit 1
fi

echo
echo "\$ p0f-query --socket $dir/p0f.sock 127.0.0.1 ::ffff:127.0.0.1 192.0.2.1"
p0f-query --socket "$dir/p0f.sock" 127.0.0.1 ::ffff:127.0.0.1 192.0.2.1
echo
echo "\$ lua5.4 examples/query.lua $dir/p0f.sock 127.0.0.1"
lua5.4 examples/query.lua "$dir/p0f.sock" 127.0.0.1
