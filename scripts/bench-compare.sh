#!/usr/bin/env bash
# Compares bench binaries on one bench command, the way BENCHMARKS.md's
# session-3 figures were taken: ROUNDS rounds, each against a fresh testkit
# process (its store grows with every run), the binaries' order alternating
# between rounds so that none always runs on the fuller testkit. Prints each
# run's JSON line, then per binary the median client CPU µs/msg (min–max) and
# the median throughput. CPU figures vary ±15 % between runs on a shared VM:
# compare medians, and only within one invocation.
#
#   cp target/release/examples/bench /tmp/bench-before    # build, switch code, build again
#   scripts/bench-compare.sh "produce --mode sync --messages 200000 --size 256 --random-body" \
#       /tmp/bench-before target/release/examples/bench
#
# ROUNDS (default 5), WORKERS (passed as --workers), BENCH_NAMESRV_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
    echo "usage: $0 \"BENCH ARGS\" BINARY [BINARY...]" >&2
    exit 2
fi
ARGS=$1
shift
BINARIES=("$@")
ROUNDS=${ROUNDS:-5}
PORT=${BENCH_NAMESRV_PORT:-19896}
WORKERS_ARG=()
[ -n "${WORKERS:-}" ] && WORKERS_ARG=(--workers "$WORKERS")

cargo build --release --quiet -p rocketmq-testkit --bin rocketmq-testkit

# shellcheck source=scripts/lib/testkit-process.sh
. scripts/lib/testkit-process.sh

results=$(mktemp)
trap 'stop_testkit; rm -f "$results"' EXIT
for round in $(seq "$ROUNDS"); do
    start_testkit --topic BenchTopic
    order=("${BINARIES[@]}")
    if [ $((round % 2)) = 0 ]; then
        reversed=()
        for ((i = ${#order[@]} - 1; i >= 0; i--)); do reversed+=("${order[i]}"); done
        order=("${reversed[@]}")
    fi
    for binary in "${order[@]}"; do
        # shellcheck disable=SC2086 # ARGS is a list of words on purpose
        line=$("$binary" $ARGS "${WORKERS_ARG[@]}" --namesrv "127.0.0.1:$PORT" | tail -n 1)
        echo "$binary $line"
        echo "$binary $line" >>"$results"
    done
done

python3 - "$results" <<'EOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    binary, _, text = line.partition(" ")
    runs.setdefault(binary, []).append(json.loads(text))
for binary, rs in runs.items():
    cpu = [r["cpu_us_per_msg"] for r in rs]
    rate = [r["throughput_per_s"] for r in rs]
    failed = sum(r["failures"] for r in rs)
    print(f"{binary}: CPU {statistics.median(cpu):.2f} us/msg ({min(cpu):.2f}-{max(cpu):.2f}), "
          f"{statistics.median(rate):,.0f} msg/s, {len(rs)} runs, {failed} failed")
EOF
