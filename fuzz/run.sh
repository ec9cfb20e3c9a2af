#!/bin/sh
# Build the libFuzzer targets with clang (ASan + UBSan) in a build directory
# of their own and run each for SECONDS (default 30: the short CI run; use
# e.g. 3600 for a long one). Extra arguments pick targets (default: all).
#
#   fuzz/run.sh [SECONDS] [TARGET ...]     targets: v3_response v2_response addr lua
#
# Each target keeps a working corpus in $BUILD/corpus-run/<target> (it grows
# from run to run) and starts from the seeds in fuzz/corpus/<target>. A crash
# leaves its input in $BUILD/artifacts/<target>/: once fixed, copy it into
# fuzz/corpus/<target>/ so ctest replays it for ever (fuzz/replay-<target>).
set -eu

secs=${1:-30}
[ $# -gt 0 ] && shift
root=$(cd "$(dirname "$0")/.." && pwd)
build=${P0F_FUZZ_BUILD:-$root/build-fuzz}

mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DP0F_FUZZ=ON \
	-DBUILD_TESTING=OFF >"$build/configure.log" 2>&1 ||
	{ cat "$build/configure.log"; exit 1; }

targets=${*:-}
if [ -z "$targets" ]; then
	targets="v3_response v2_response addr"
	# The binding target exists only where Lua 5.4 and liblua5.4 were found.
	grep -q 'no lua fuzz target' "$build/configure.log" || targets="$targets lua"
fi

failed=""
for t in $targets; do
	bin="$build/fuzz/fuzz-$t"
	# One target at a time: a target that does not build fails alone.
	if ! cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target "fuzz-$t" \
		>"$build/build-$t.log" 2>&1; then
		tail -20 "$build/build-$t.log"
		echo "fuzz-$t did not build"
		failed="$failed $t"
		continue
	fi
	mkdir -p "$build/corpus-run/$t" "$build/artifacts/$t"
	dict=""
	[ -f "$root/fuzz/$t.dict" ] && dict="-dict=$root/fuzz/$t.dict"
	echo "== fuzz-$t for ${secs}s"
	# shellcheck disable=SC2086 # $dict is one option or nothing
	if "$bin" -max_total_time="$secs" -max_len=512 -print_final_stats=1 \
		-artifact_prefix="$build/artifacts/$t/" $dict \
		"$build/corpus-run/$t" "$root/fuzz/corpus/$t" >"$build/fuzz-$t.log" 2>&1; then
		grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$build/fuzz-$t.log" || true
	else
		tail -40 "$build/fuzz-$t.log"
		echo "fuzz-$t FAILED: input in $build/artifacts/$t/"
		failed="$failed $t"
	fi
done

[ -z "$failed" ] || { echo "failed:$failed"; exit 1; }
echo "all fuzz targets ran ${secs}s without findings"
