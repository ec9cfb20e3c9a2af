#!/usr/bin/env bash
# The whole test suite, as CI runs it (Debian 12, as root):
#   1. everything installed (scripts/install-deps.sh; P0F_NO_INSTALL=1 skips it)
#   2. a strict build (-Werror) and the rock installed by luarocks for Lua 5.4
#      and LuaJIT into throwaway trees
#   3. the suite again under ASan+UBSan (Lua 5.4 and LuaJIT), and under
#      valgrind (PUC Lua 5.4); foreign daemons (rspamd, Postfix) are left out
#   4. the client specs under PUC Lua 5.1-5.3; the fuzz targets built with
#      clang and run briefly
#   5. the whole suite under Lua 5.4 and LuaJIT: C tests, codec, client,
#      libev driver, real p0f, filter, cache, Redis, rspamd, Postfix, soak,
#      docs and man pages, the release rock and the Debian packages
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=2

step() { printf '\n==== %s\n' "$*"; }

if [ "${P0F_NO_INSTALL:-0}" != 1 ]; then
  step "installing dependencies"
  bash scripts/install-deps.sh
fi

step "strict build"
cmake -S . -B build -DP0F_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

step "luarocks make (Lua 5.4 and LuaJIT, throwaway trees)"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
for v in 5.4 5.1; do
  luarocks --lua-version "$v" --tree "$tree/$v" make p0f-scm-1.rockspec >"$tree/luarocks-$v.log" 2>&1 ||
    { cat "$tree/luarocks-$v.log"; exit 1; }
done
rm -rf build.luarocks
lua5.4 -e "package.path='$tree/5.4/share/lua/5.4/?.lua;$tree/5.4/share/lua/5.4/?/init.lua;'..package.path
  package.cpath='$tree/5.4/lib/lua/5.4/?.so;'..package.cpath
  assert(require('p0f').encode_query('192.0.2.1'))"
luajit -e "package.path='$tree/5.1/share/lua/5.1/?.lua;$tree/5.1/share/lua/5.1/?/init.lua;'..package.path
  package.cpath='$tree/5.1/lib/lua/5.1/?.so;'..package.cpath
  assert(require('p0f').encode_query('192.0.2.1'))"
echo "installed and loaded under both"

# The module split, on what luarocks installed: p0f.core (all rspamd loads)
# links neither libev nor hiredis, and each module exports only its luaopen_*.
for v in 5.4 5.1; do
  mods=$tree/$v/lib/lua/$v/p0f
  if ldd "$mods/core.so" | grep -E 'libev|hiredis'; then
    echo "p0f/core.so ($v) links libev or hiredis"; exit 1
  fi
  # not grep -q: it would quit at the first match and, under pipefail, ldd's
  # SIGPIPE would fail the check it just passed
  ldd "$mods/ev.so" | grep libev >/dev/null || { echo "p0f/ev.so ($v) does not link libev"; exit 1; }
  for m in core ev; do
    exported=$(nm -D --defined-only "$mods/$m.so" | awk '$2 ~ /^[TDBR]$/ { print $3 }')
    if [ "$exported" != "luaopen_p0f_$m" ]; then
      printf 'p0f/%s.so (%s) exports more than luaopen_p0f_%s:\n%s\n' "$m" "$v" "$m" "$exported"; exit 1
    fi
  done
done
echo "p0f.core needs only libc; each module exports only its luaopen_*"

step "ASan + UBSan"
asan=$(gcc -print-file-name=libasan.so)
cmake -S . -B build-asan -DP0F_WERROR=ON -DP0F_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
  "-DP0F_SPEC_RUNNER=env;LD_PRELOAD=$asan" >/dev/null
cmake --build build-asan -j"$jobs"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# LuaJIT keeps its heap in its own mmap'd arenas, which LeakSanitizer does
# not scan: leak checks are meaningful (and on) under PUC Lua only. The
# packaging tests (label package) build and install the project itself,
# not the code under the sanitizer: they run once, in the last step.
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  ctest -LE 'external|package' -E '^luajit/' -j"$jobs" --output-on-failure)
(cd build-asan && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  ctest -LE 'external|package' -R '^luajit/' -j"$jobs" --output-on-failure)
unset UBSAN_OPTIONS

step "valgrind (Lua 5.4)"
cmake -S . -B build-valgrind -DP0F_TEST_LUAS=5.4 -DCMAKE_BUILD_TYPE=Debug \
  "-DP0F_SPEC_RUNNER=env;P0F_REAL_QUERIES=5000;P0F_SOAK_QUERIES=4000;valgrind;-q;--error-exitcode=99;--leak-check=full;--errors-for-leak-kinds=definite;--suppressions=$root/spec/valgrind.supp" \
  >/dev/null
cmake --build build-valgrind -j"$jobs"
(cd build-valgrind && ctest -LE 'external|package' -R '^lua5.4/' -j"$jobs" --output-on-failure)

step "PUC Lua 5.1, 5.2 and 5.3: the client, the driver, the examples"
cmake -S . -B build-other "-DP0F_TEST_LUAS=5.1;5.2;5.3" -DP0F_WERROR=ON >/dev/null
cmake --build build-other -j"$jobs"
(cd build-other && ctest -R 'query_spec|client_spec|ev_spec|examples_spec' -j"$jobs" --output-on-failure)

step "fuzz targets (clang), 10 s each"
fuzz/run.sh 10

step "the whole suite (Lua 5.4 and LuaJIT)"
cd build
ctest -j"$jobs" --output-on-failure
