# A testkit process on loopback for the bench scripts, sourced by them.
# Needs PORT; the testkit binary must be built (target/release).
#
#   start_testkit [TESTKIT ARGS...]   # stops the running one, starts a fresh one
#   stop_testkit                      # also run on exit

testkit=
stop_testkit() {
    if [ -n "$testkit" ]; then
        kill -INT "$testkit" 2>/dev/null || true
        wait "$testkit" 2>/dev/null || true
        testkit=
    fi
}
trap stop_testkit EXIT

start_testkit() {
    stop_testkit
    ./target/release/rocketmq-testkit --listen "127.0.0.1:$PORT" --brokers 1 "$@" >/dev/null 2>&1 &
    testkit=$!
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return; sleep 0.1; done
    echo "the testkit did not start on port $PORT" >&2
    exit 1
}
