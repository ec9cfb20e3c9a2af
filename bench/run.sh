#!/bin/sh
# The benchmark: lua-p0f against a C reference client and the peers, all
# driving one real p0f on the loopback interface that this script starts
# and stops (by its PID). Prints one table of medians over several rounds.
#
#   bench/run.sh [--rounds N] [--seconds S] [--quick] [--pin both|same|split]
#                [--memory-queries N] [--build DIR]
#
#   --rounds N     rounds of every row, interleaved; medians are reported (5)
#   --seconds S    length of one measurement (2)
#   --quick        2 rounds of 0.5 s, 100,000 queries for the memory row
#   --pin both     every daemon row twice: p0f and the client sharing CPU 1,
#                  then p0f on CPU 0 and the client on CPU 1 (default)
#   --pin same     only the shared-CPU figures;  --pin split: only the split ones
#   --build DIR    build directory (default: build-bench in the source tree)
#
# Needs root (p0f sniffs lo), p0f, cmake, a C compiler, libev-dev,
# liblua5.4-dev, lua5.4, lua-socket, lua-cqueues; the plugin-layer row needs
# lua-rex-pcre2; the Haraka rows need node and npm (skipped without them).
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$SRC/build-bench"
ROUNDS=5
SECONDS_EACH=2
MEMQ=1000000
PIN=both
DEPTH=64
HARAKA_VERSION=1.0.15
LUA=${LUA:-lua5.4}
# The query mix, the same every time: a host p0f knows, and unseen IPv4/IPv6.
MIX="127.0.0.1 192.0.2.7 2001:db8::7"

while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift 2 ;;
	--seconds) SECONDS_EACH=$2; shift 2 ;;
	--memory-queries) MEMQ=$2; shift 2 ;;
	--quick) ROUNDS=2; SECONDS_EACH=0.5; MEMQ=100000; shift ;;
	--pin) PIN=$2; shift 2 ;;
	--build) BUILD=$2; shift 2 ;;
	-h|--help) sed -n '2,19p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done

case "$PIN" in
both) MODES="same split" ;;
same|split) MODES=$PIN ;;
*) echo "run.sh: --pin both, same or split" >&2; exit 2 ;;
esac
[ "$(nproc)" -ge 2 ] || { echo "run.sh: needs 2 CPUs (pins to CPUs 0 and 1)" >&2; exit 1; }
CLI_CPU=1
pin() { # pin CPU command...
	cpu=$1; shift
	taskset -c "$cpu" "$@"
}
# Move the running p0f: same = onto the clients' CPU, split = off it.
# The p0f-mux daemons go with p0f: daemons on one CPU, clients on the other.
place_p0f() {
	if [ "$1" = same ]; then c=$CLI_CPU; else c=0; fi
	for p in "$P0F_PID" $MUX_PIDS; do taskset -pc "$c" "$p" >/dev/null; done
}

[ "$(id -u)" = 0 ] || { echo "run.sh: p0f needs root to sniff lo" >&2; exit 1; }
command -v p0f >/dev/null || { echo "run.sh: p0f is not installed" >&2; exit 1; }

# ---- build (optimised) --------------------------------------------------
echo "building in $BUILD ..." >&2
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target p0f_core p0f-bench-ref p0f-bench-many tcp-touch >/dev/null
REF="$BUILD/bench/p0f-bench-ref"
MANY="$BUILD/bench/p0f-bench-many"
TOUCH="$BUILD/spec/tcp-touch"
export LUA_PATH="$SRC/lua/?.lua;$SRC/lua/?/init.lua;$SRC/bench/?.lua;;"
export LUA_CPATH="$BUILD/?.so;;"

# ---- Haraka's client, pinned version, installed next to the build ----------
HARAKA=
NODE_DIR="$BUILD/bench-node"
if command -v node >/dev/null && command -v npm >/dev/null; then
	if [ ! -f "$NODE_DIR/node_modules/haraka-plugin-p0f/package.json" ] ||
	   ! grep -q "\"version\": \"$HARAKA_VERSION\"" "$NODE_DIR/node_modules/haraka-plugin-p0f/package.json"; then
		mkdir -p "$NODE_DIR"
		echo "installing haraka-plugin-p0f@$HARAKA_VERSION ..." >&2
		npm install --prefix "$NODE_DIR" --no-save --no-audit --no-fund \
			"haraka-plugin-p0f@$HARAKA_VERSION" >/dev/null 2>&1 || true
	fi
	[ -f "$NODE_DIR/node_modules/haraka-plugin-p0f/index.js" ] && HARAKA=yes
	HARAKA_WHY="npm install haraka-plugin-p0f@$HARAKA_VERSION failed"
else
	HARAKA_WHY="node/npm not installed"
fi

# ---- a real p0f on lo ------------------------------------------------------
TMP=$(mktemp -d)
P0F_PID=
MUX_PIDS=
cleanup() {
	for m in $MUX_PIDS; do kill "$m" 2>/dev/null || true; done
	if [ -n "$P0F_PID" ]; then
		kill "$P0F_PID" 2>/dev/null || true
		wait "$P0F_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
SOCK="$TMP/p0f.sock"
# taskset execs p0f, so $! is p0f itself (a shell function here would not be).
taskset -c 0 p0f -i lo -s "$SOCK" >"$TMP/p0f.log" 2>&1 &
P0F_PID=$!
[ "$(cat "/proc/$P0F_PID/comm" 2>/dev/null)" = p0f ] || sleep 0.1
[ "$(cat "/proc/$P0F_PID/comm" 2>/dev/null)" = p0f ] ||
	{ echo "run.sh: p0f did not start as $P0F_PID" >&2; exit 1; }
i=0
until grep -q "Entered main event loop" "$TMP/p0f.log" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 200 ] || ! kill -0 "$P0F_PID" 2>/dev/null; then
		echo "run.sh: p0f did not start:" >&2; cat "$TMP/p0f.log" >&2; exit 1
	fi
	sleep 0.05
done
# Make p0f learn 127.0.0.1 (and ::1), then wait until it answers "ok".
i=0
until P0F_SOCK=$SOCK "$LUA" -e 'local r = require("p0f").query(os.getenv("P0F_SOCK"), "127.0.0.1")
		os.exit(r and r.status == "ok" and 0 or 1)'; do
	i=$((i + 1))
	[ $i -le 100 ] || { echo "run.sh: p0f never learned 127.0.0.1" >&2; exit 1; }
	"$TOUCH" 127.0.0.1 3 >/dev/null
	"$TOUCH" ::1 3 >/dev/null 2>&1 || true
	sleep 0.1
done

# ---- two p0f-mux daemons in front of it: cache off, and the default cache ----
start_mux() { # NAME [CONFIG LINE]
	printf '%s\n' "${2:-}" >"$TMP/$1.conf"
	"$LUA" "$SRC/bin/p0f-mux" -c "$TMP/$1.conf" -l "unix:$TMP/$1.sock" -s "$SOCK" >"$TMP/$1.log" 2>&1 &
	MUX_PIDS="$MUX_PIDS $!"
	i=0
	until grep -q "listening on" "$TMP/$1.log" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le 100 ] || { echo "run.sh: p0f-mux did not start:" >&2; cat "$TMP/$1.log" >&2; exit 1; }
		sleep 0.05
	done
}
start_mux mux_nc "cache_size = 0"
MUX_NC_PID=${MUX_PIDS##* }
start_mux mux_c
MUX_CACHE_PID=${MUX_PIDS##* }

# ---- the rows ----------------------------------------------------------------
R="$TMP/results"
{
	echo "# lua-p0f benchmark: $(p0f -h 2>&1 | grep -o 'p0f [0-9][^ ]*' | head -1) on lo, $($LUA -v 2>&1 | cut -d' ' -f1-2), $(date -u +%Y-%m-%d)"
	echo "# $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs; load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# pinning (taskset): \"1 CPU\" = p0f and the client share CPU $CLI_CPU; \"2 CPUs\" = p0f on CPU 0, the client on CPU $CLI_CPU"
	echo "# clock ticks per second: $(getconf CLK_TCK)"
	echo "# medians of $ROUNDS rounds x ${SECONDS_EACH}s; pipelined rows keep $DEPTH queries in flight on one connection"
	echo "# query mix, cycled: $MIX (only 127.0.0.1 is known to p0f)"
	if [ -n "$HARAKA" ]; then
		echo "# peers: $($LUA -e 'print((require("socket")._VERSION))'), haraka-plugin-p0f $HARAKA_VERSION on node $(node --version)"
	else
		echo "# peers: $($LUA -e 'print((require("socket")._VERSION))'); Haraka skipped ($HARAKA_WHY)"
	fi
} >"$R"

ticks_of() { # PID: CPU time it used so far, in clock ticks (user + system)
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}
p0f_ticks() { ticks_of "$P0F_PID"; }
row() { # row ID ROUND command...
	id=$1; round=$2; shift 2
	t0=$(p0f_ticks)
	out=$(pin "$CLI_CPU" "$@") || { echo "run.sh: row $id failed" >&2; exit 1; }
	echo "$id $round $out $(( $(p0f_ticks) - t0 ))" >>"$R"
	printf '.' >&2
}

# Many clients, one query at a time each (p0f-bench-many): queries/s on
# one line, and on another how many clients were refused or never served.
# With a MUX_PID: also the CPU time that p0f-mux spent on the row, which
# moves less than a rate with what else the machine is doing.
many_row() { # ID ROUND SOCKET CLIENTS [MUX_PID]
	id=$1; round=$2; mux=${5:-}
	t0=$(p0f_ticks)
	[ -z "$mux" ] || m0=$(ticks_of "$mux")
	# shellcheck disable=SC2086 # MIX is a list of words
	out=$(pin "$CLI_CPU" "$MANY" "$3" "$4" "$SECONDS_EACH" $MIX) || { echo "run.sh: row $id failed" >&2; exit 1; }
	[ -z "$mux" ] || m1=$(ticks_of "$mux")
	set -- $out
	echo "$id $round $1 $2 $(( $(p0f_ticks) - t0 ))" >>"$R"
	echo "served $id $round $3 $4" >>"$R"
	[ -z "$mux" ] || echo "muxcpu $id $round $((m1 - m0)) $1" >>"$R"
	printf '.' >&2
}

mux_rows() { # MODE ROUND
	for n in 1 64 512; do
		many_row "direct_$n@$1" "$2" "$SOCK" "$n"
		many_row "mux_nc_$n@$1" "$2" "$TMP/mux_nc.sock" "$n" "$MUX_NC_PID"
		many_row "mux_c_$n@$1" "$2" "$TMP/mux_c.sock" "$n" "$MUX_CACHE_PID"
	done
}

# shellcheck disable=SC2086 # MIX is a list of words
daemon_rows() { # MODE ROUND: every row that talks to p0f
	m=$1; round=$2
	place_p0f "$m"
	row "ref_one@$m" "$round" "$REF" "$SOCK" one "$SECONDS_EACH" $MIX
	row "ref_pipe@$m" "$round" "$REF" "$SOCK" "pipe:$DEPTH" "$SECONDS_EACH" $MIX
	row "blocking@$m" "$round" "$LUA" "$SRC/bench/api.lua" "$SOCK" blocking "$SECONDS_EACH" "$DEPTH" $MIX
	row "persistent@$m" "$round" "$LUA" "$SRC/bench/api.lua" "$SOCK" persistent "$SECONDS_EACH" "$DEPTH" $MIX
	row "libev@$m" "$round" "$LUA" "$SRC/bench/api.lua" "$SOCK" libev "$SECONDS_EACH" "$DEPTH" $MIX
	row "pollable@$m" "$round" "$LUA" "$SRC/bench/api.lua" "$SOCK" cqueues "$SECONDS_EACH" "$DEPTH" $MIX
	row "peer@$m" "$round" "$LUA" "$SRC/bench/peer.lua" "$SOCK" "$SECONDS_EACH" $MIX
	if [ -n "$HARAKA" ]; then
		row "haraka_one@$m" "$round" env NODE_PATH="$NODE_DIR/node_modules" node "$SRC/bench/haraka.js" "$SOCK" "$SECONDS_EACH" 1 $MIX
		row "haraka@$m" "$round" env NODE_PATH="$NODE_DIR/node_modules" node "$SRC/bench/haraka.js" "$SOCK" "$SECONDS_EACH" "$DEPTH" $MIX
	fi
	mux_rows "$m" "$round"
}

# Rounds interleave every row, so a disturbance spreads over all of them.
for round in $(seq 1 "$ROUNDS"); do
	printf 'round %s ' "$round" >&2
	for m in $MODES; do daemon_rows "$m" "$round"; done
	# No daemon in these: they run on the client CPU, p0f idle elsewhere.
	place_p0f split
	row decode "$round" "$LUA" "$SRC/bench/decode.lua" "$SOCK" ours "$SECONDS_EACH" 127.0.0.1
	row decode_plain "$round" "$LUA" "$SRC/bench/decode.lua" "$SOCK" plain "$SECONDS_EACH" 127.0.0.1
	if [ -f "$SRC/lua/p0f/filter.lua" ] && [ -f "$SRC/lua/p0f/cache.lua" ]; then
		row verdict "$round" "$LUA" "$SRC/bench/verdict.lua" "$SOCK" "$SECONDS_EACH" 127.0.0.1
	fi
	echo >&2
done
[ -n "$HARAKA" ] || { echo "skip haraka_one $HARAKA_WHY" >>"$R"; echo "skip haraka $HARAKA_WHY" >>"$R"; }
echo "memory ... ($MEMQ queries, p0f and the client on CPU $CLI_CPU)" >&2
place_p0f same
# shellcheck disable=SC2086 # MIX is a list of words
echo "memory $(pin "$CLI_CPU" "$LUA" "$SRC/bench/memory.lua" "$SOCK" "$MEMQ" $MIX)" >>"$R"

kill -0 "$P0F_PID" 2>/dev/null || { echo "run.sh: p0f died during the run" >&2; exit 1; }
# The cached mux's stats line: its cache-hit rate over every round.
kill -USR1 "$MUX_CACHE_PID"
sleep 0.2
echo "muxstats $(grep 'stats: ' "$TMP/mux_c.log" | tail -1 | sed 's/.*stats: //')" >>"$R"
# The table, and the raw figures beside it for a closer look.
"$LUA" "$SRC/bench/table.lua" "$R" | tee "$BUILD/bench-table.txt"
# The decode ratio once more, both decoders timed in one process, in turns.
place_p0f split
pin "$CLI_CPU" "$LUA" "$SRC/bench/decode.lua" "$SOCK" both "$SECONDS_EACH" 127.0.0.1 |
	tee -a "$BUILD/bench-table.txt"
cp "$R" "$BUILD/bench-raw.txt"
echo "(also in $BUILD/bench-table.txt; raw figures in $BUILD/bench-raw.txt)" >&2
