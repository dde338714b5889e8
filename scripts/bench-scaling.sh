#!/usr/bin/env bash
# How the client's cost grows with the work: 1 -> 1,000 queues per topic and
# 256 B -> 1 MiB bodies, against testkit processes on loopback (so the client's
# CPU time is its own). Prints one JSON line per run, prefixed with what varied.
# Figures go into BENCHMARKS.md.
#
#   scripts/bench-scaling.sh            # WORKERS=N passes --workers N
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${BENCH_NAMESRV_PORT:-19886}
WORKERS_ARG=()
[ -n "${WORKERS:-}" ] && WORKERS_ARG=(--workers "$WORKERS")

cargo build --release --quiet -p rocketmq-testkit --bin rocketmq-testkit
cargo build --release --quiet -p rocketmq-examples --example bench

# shellcheck source=scripts/lib/testkit-process.sh
. scripts/lib/testkit-process.sh

# A fresh testkit serving the topics $2... with $1 queues each (made up front:
# an auto-created topic gets the producer's 4 queues).
start_with_queues() {
    local queues=$1
    shift
    local topics=()
    for topic in "$@"; do topics+=(--topic "$topic"); done
    start_testkit --queues "$queues" "${topics[@]}"
}

bench() {
    local tag=$1
    shift
    echo "$tag $(./target/release/examples/bench "$@" "${WORKERS_ARG[@]}" --namesrv "127.0.0.1:$PORT" | tail -n 1)"
}

for queues in 1 10 100 1000; do
    start_with_queues "$queues" "Q$queues" "QC$queues"
    bench "queues=$queues" produce --topic "Q$queues" --mode sync --messages 100000 --size 256 --concurrency 8
    bench "queues=$queues" consume --topic "QC$queues" --messages 100000 --size 256
done

start_with_queues 4 S256 SC256 S4096 SC4096 S65536 SC65536 S1048576 SC1048576
for spec in 256:100000 4096:50000 65536:10000 1048576:1000; do
    size=${spec%%:*}
    messages=${spec##*:}
    bench "size=$size" produce --topic "S$size" --mode sync --messages "$messages" --size "$size" --random-body --concurrency 8
    bench "size=$size" consume --topic "SC$size" --messages "$messages" --size "$size" --random-body
done
