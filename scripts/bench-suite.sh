#!/usr/bin/env bash
# Runs the bench program's modes against a testkit cluster in a separate process
# on loopback (so the client's CPU time is its own), and prints one JSON line per
# run: the raw floor (one write per frame, then coalesced as the client's writer
# does), each produce mode, and push consumption. Figures go into BENCHMARKS.md.
#
#   scripts/bench-suite.sh [MESSAGES] [SIZE]     # WORKERS=N passes --workers N
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${1:-100000}
SIZE=${2:-256}
PORT=${BENCH_NAMESRV_PORT:-19876}
WORKERS_ARG=()
[ -n "${WORKERS:-}" ] && WORKERS_ARG=(--workers "$WORKERS")

cargo build --release --quiet -p rocketmq-testkit --bin rocketmq-testkit
cargo build --release --quiet -p rocketmq-examples --example bench
# shellcheck source=scripts/lib/testkit-process.sh
. scripts/lib/testkit-process.sh
start_testkit --topic BenchTopic

bench() { ./target/release/examples/bench "$@" "${WORKERS_ARG[@]}" --namesrv "127.0.0.1:$PORT" | tail -n 1; }
bench raw --messages "$MESSAGES" --size "$SIZE" --concurrency 8
bench raw --coalesce --messages "$MESSAGES" --size "$SIZE" --concurrency 8
for mode in sync async oneway batch; do
    bench produce --mode "$mode" --messages "$MESSAGES" --size "$SIZE" --concurrency 8
done
bench consume --topic "BenchConsume$$" --messages "$MESSAGES" --size "$SIZE"
