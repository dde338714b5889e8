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

testkit=
stop_testkit() {
    if [ -n "$testkit" ]; then
        kill -INT "$testkit" 2>/dev/null || true
        wait "$testkit" 2>/dev/null || true
        testkit=
    fi
}
trap stop_testkit EXIT

# Starts a fresh testkit serving the topics $2... with $1 queues each (made up
# front: an auto-created topic gets the producer's 4 queues).
start_testkit() {
    stop_testkit
    local queues=$1
    shift
    local topics=()
    for topic in "$@"; do topics+=(--topic "$topic"); done
    ./target/release/rocketmq-testkit --listen "127.0.0.1:$PORT" --brokers 1 --queues "$queues" "${topics[@]}" >/dev/null 2>&1 &
    testkit=$!
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return; sleep 0.1; done
    echo "testkit did not start" >&2
    exit 1
}

bench() {
    local tag=$1
    shift
    echo "$tag $(./target/release/examples/bench "$@" "${WORKERS_ARG[@]}" --namesrv "127.0.0.1:$PORT" | tail -n 1)"
}

for queues in 1 10 100 1000; do
    start_testkit "$queues" "Q$queues" "QC$queues"
    bench "queues=$queues" produce --topic "Q$queues" --mode sync --messages 100000 --size 256 --concurrency 8
    bench "queues=$queues" consume --topic "QC$queues" --messages 100000 --size 256
done

start_testkit 4 S256 SC256 S4096 SC4096 S65536 SC65536 S1048576 SC1048576
for spec in 256:100000 4096:50000 65536:10000 1048576:1000; do
    size=${spec%%:*}
    messages=${spec##*:}
    bench "size=$size" produce --topic "S$size" --mode sync --messages "$messages" --size "$size" --random-body --concurrency 8
    bench "size=$size" consume --topic "SC$size" --messages "$messages" --size "$size" --random-body
done
