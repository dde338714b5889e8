#!/usr/bin/env bash
# Start or stop a real RocketMQ cluster on loopback: one nameserver and one broker
# (a second with BROKERS=2), from the rocketmq-namesrv and rocketmq-broker crates (an
# independent Rust implementation of the Java servers). Installs them when missing.
#
#   scripts/real-cluster.sh start    # prints ROCKETMQ_NAMESRV_ADDR=127.0.0.1:9876
#   ACL=1 scripts/real-cluster.sh start   # also prints ROCKETMQ_ACL_NAMESRV_ADDR=127.0.0.1:9877
#   scripts/real-cluster.sh stop
#   scripts/real-cluster.sh status
#   scripts/real-cluster.sh stop-broker [NAME] [TERM|KILL]    # NAME: broker-a (default) or broker-b
#   scripts/real-cluster.sh start-broker [NAME]               # same store and port; waits for its route
#   scripts/real-cluster.sh restart-broker [NAME] [TERM|KILL] [SECONDS_DOWN]
#   scripts/real-cluster.sh restart-namesrv [TERM|KILL] [SECONDS_DOWN]
#
# The broker faults keep the store directory: a broker stopped with TERM shuts
# down cleanly, one stopped with KILL loses what it kept only in memory (the
# consumer offsets since their last flush: the broker's loss, not a
# client's). start-broker returns once the nameserver routes to the broker
# again, so a caller can time the client's recovery from there.
#
# Environment: RMQ_CLUSTER_DIR (state, logs, store; default /tmp/rocketmq-real-cluster),
# BROKERS (1 or 2), NAMESRV_PORT (9876), BROKER_PORT (10911; the second broker uses +10),
# ACL (1: also start a separate nameserver on NAMESRV_PORT+1 with one broker,
# broker-acl on BROKER_PORT+20, that enforces authentication; user interop,
# secret interop-secret).
set -euo pipefail

VERSION=1.0.0
DIR=${RMQ_CLUSTER_DIR:-/tmp/rocketmq-real-cluster}
BROKERS=${BROKERS:-1}
NAMESRV_PORT=${NAMESRV_PORT:-9876}
BROKER_PORT=${BROKER_PORT:-10911}
ACL=${ACL:-0}
BIN=${CARGO_HOME:-$HOME/.cargo}/bin
NAMESRV_ADDR=127.0.0.1:$NAMESRV_PORT
ACL_NAMESRV_PORT=$((NAMESRV_PORT + 1))
ACL_NAMESRV_ADDR=127.0.0.1:$ACL_NAMESRV_PORT

install_servers() {
    if [[ -x $BIN/rocketmq-namesrv-rust && -x $BIN/rocketmq-broker-rust ]]; then
        return
    fi
    echo "installing rocketmq-namesrv and rocketmq-broker $VERSION (takes a while the first time)" >&2
    # One target dir for both so their shared dependencies build once.
    CARGO_TARGET_DIR=${RMQ_INSTALL_TARGET_DIR:-$DIR-build} \
        cargo install --locked "rocketmq-namesrv@$VERSION" "rocketmq-broker@$VERSION" >&2
}

# Asks the nameserver on `port` for the route of a topic with a hand-built JSON
# frame and prints the answer (header and body, as text).
route_answer() {
    local topic=$1 port=${2:-$NAMESRV_PORT} header len
    header="{\"code\":105,\"extFields\":{\"acceptStandardJsonOnly\":\"true\",\"topic\":\"$topic\"},\"flag\":0,\"language\":\"RUST\",\"opaque\":1,\"serializeTypeCurrentRPC\":\"JSON\",\"version\":479}"
    len=${#header}
    { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
    printf "$(printf '\\x%02x' $(((len + 4) >> 24 & 255)) $(((len + 4) >> 16 & 255)) $(((len + 4) >> 8 & 255)) $(((len + 4) & 255)) 0 $((len >> 16 & 255)) $((len >> 8 & 255)) $((len & 255)))" >&3
    printf '%s' "$header" >&3
    timeout 1 cat <&3 | head -c 65536 | tr -d "\000-\010" || true
    exec 3<&- 3>&-
}

# Succeeds when the nameserver answers the route of a topic with SUCCESS (code 0).
route_exists() {
    local answer
    answer=$(route_answer "$@") || return 1
    [[ $answer == *'"code":0'* ]]
}

write_broker_config() {
    local name=$1 port=$2 store=$3 namesrv=${4:-$NAMESRV_ADDR} auth=${5:-}
    cat >"$DIR/$name.toml" <<TOML
[broker]
listenPort = $port
brokerIp1 = "127.0.0.1"
storePathRootDir = "$store"
namesrvAddr = "$namesrv"
$auth
autoCreateTopicEnable = true
autoCreateSubscriptionGroup = true
# SQL92 subscriptions (Java's enablePropertyFilter, off by default).
enablePropertyFilter = true
# Check half messages back every second, after 5 s without an outcome (Java:
# 30 s and 6 s), so the interop suite can test check-back in seconds. The
# timeout stays above transactionOpBatchInterval (3 s): a half message is not
# checked before the record of its commit or rollback is written.
transactionCheckInterval = 1000
transactionTimeout = 5000

[broker.brokerIdentity]
brokerName = "$name"
brokerClusterName = "DefaultCluster"
brokerId = 0

[broker.brokerServerConfig]
bindAddress = "127.0.0.1"

[store]
storePathRootDir = "$store"
haListenAddress = "127.0.0.1"
haListenPort = $((port + 1))
mappedFileSizeCommitLog = 67108864
# Build machines run with fuller disks than brokers: by default (75 % / 90 %)
# the broker stops accepting writes on a disk that cargo's target dirs filled.
diskMaxUsedSpaceRatio = 95
diskSpaceCleanForciblyRatio = 97
diskSpaceWarningLevelRatio = 98
timerWheelEnable = true
TOML
}

start() {
    if [[ -f $DIR/namesrv.pid ]] && kill -0 "$(cat "$DIR/namesrv.pid")" 2>/dev/null; then
        echo "already running; ROCKETMQ_NAMESRV_ADDR=$NAMESRV_ADDR"
        if [[ -f $DIR/acl-namesrv.pid ]] && kill -0 "$(cat "$DIR/acl-namesrv.pid")" 2>/dev/null; then
            echo "ROCKETMQ_ACL_NAMESRV_ADDR=$ACL_NAMESRV_ADDR"
        fi
        return
    fi
    install_servers
    rm -rf "$DIR"
    mkdir -p "$DIR/home"
    "$BIN/rocketmq-namesrv-rust" --listenPort "$NAMESRV_PORT" --bindAddress 127.0.0.1 \
        --rocketmqHome "$DIR/home" --kvConfigPath "$DIR/home/kvConfig.json" \
        >"$DIR/namesrv.log" 2>&1 &
    echo $! >"$DIR/namesrv.pid"
    local names=(broker-a broker-b) i
    for ((i = 0; i < BROKERS; i++)); do
        local name=${names[$i]} port=$((BROKER_PORT + 10 * i))
        write_broker_config "$name" "$port" "$DIR/store-$name"
        ROCKETMQ_HOME="$DIR/home" "$BIN/rocketmq-broker-rust" -c "$DIR/$name.toml" -n "$NAMESRV_ADDR" \
            >"$DIR/$name.log" 2>&1 &
        echo $! >"$DIR/$name.pid"
    done
    ((ACL)) && start_acl_pair
    wait_for_route "$NAMESRV_PORT"
    echo "ROCKETMQ_NAMESRV_ADDR=$NAMESRV_ADDR"
    if ((ACL)); then
        wait_for_route "$ACL_NAMESRV_PORT"
        echo "ROCKETMQ_ACL_NAMESRV_ADDR=$ACL_NAMESRV_ADDR"
    fi
}

# A nameserver of its own and one broker that enforces authentication (a
# separate cluster, so the plain one stays open to unsigned clients).
start_acl_pair() {
    "$BIN/rocketmq-namesrv-rust" --listenPort "$ACL_NAMESRV_PORT" --bindAddress 127.0.0.1 \
        --rocketmqHome "$DIR/home" --kvConfigPath "$DIR/home/kvConfig-acl.json" \
        >"$DIR/acl-namesrv.log" 2>&1 &
    echo $! >"$DIR/acl-namesrv.pid"
    local auth
    auth=$(printf '%s\n' 'authenticationEnabled = true' \
        'initAuthenticationUser = "interop:interop-secret"' \
        "authConfigPath = \"$DIR/home/auth-acl\"")
    write_broker_config broker-acl $((BROKER_PORT + 20)) "$DIR/store-broker-acl" "$ACL_NAMESRV_ADDR" "$auth"
    ROCKETMQ_HOME="$DIR/home" "$BIN/rocketmq-broker-rust" -c "$DIR/broker-acl.toml" -n "$ACL_NAMESRV_ADDR" \
        >"$DIR/broker-acl.log" 2>&1 &
    echo $! >"$DIR/broker-acl.pid"
}

# Succeeds when something accepts TCP connections on loopback `port`.
port_open() {
    { exec 4<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    exec 4<&- 4>&-
}

# Succeeds when the nameserver's route of TBW102 names the broker at `addr`.
route_names() {
    local answer
    answer=$(route_answer TBW102) || return 1
    [[ $answer == *'"code":0'* && $answer == *"\"$1\""* ]]
}

# Waits until the nameserver on `port` serves TBW102 (a broker registered).
wait_for_route() {
    local port=$1 deadline=$((SECONDS + 60))
    until route_exists TBW102 "$port"; do
        if ((SECONDS > deadline)); then
            echo "the cluster did not come up within 60 s; logs in $DIR" >&2
            # A broker that will not start says why among its warnings (a
            # full disk is the usual cause on a build machine: it then stops
            # during startup, after registering).
            grep -h -E 'WARN|ERROR' "$DIR"/broker*.log 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | tail -5 >&2 || true
            df -h "$DIR" >&2 || true
            stop
            exit 1
        fi
        sleep 0.5
    done
}

stop() {
    local pidfile pid
    for pidfile in "$DIR"/*.pid; do
        [[ -f $pidfile ]] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$pidfile"
    done
    rm -rf "$DIR"/store-*
}

# The port of a broker of this script by name.
broker_port() {
    case $1 in
    broker-a) echo "$BROKER_PORT" ;;
    broker-b) echo $((BROKER_PORT + 10)) ;;
    *) echo "unknown broker $1 (broker-a or broker-b)" >&2; return 2 ;;
    esac
}

# Sends `signal` (TERM or KILL) to the process of `pidfile` and waits for it to
# end (TERM: up to 30 s, then KILL).
stop_process() {
    local pidfile=$1 signal=$2 pid
    [[ -f $pidfile ]] || { echo "$(basename "$pidfile" .pid) is not running" >&2; return 1; }
    pid=$(cat "$pidfile")
    case $signal in
    TERM | KILL) ;;
    *) echo "unknown signal $signal (TERM or KILL)" >&2; return 2 ;;
    esac
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

stop_broker() {
    local name=${1:-broker-a} signal=${2:-TERM}
    broker_port "$name" >/dev/null
    stop_process "$DIR/$name.pid" "$signal"
    echo "$name stopped ($signal)"
}

# Starts a broker stopped by stop-broker again, on its configuration, store and
# port, and waits until it listens and the nameserver routes to it.
start_broker() {
    local name=${1:-broker-a} port deadline
    port=$(broker_port "$name")
    [[ -f $DIR/$name.toml ]] || { echo "no configuration for $name; start the cluster first" >&2; return 1; }
    if [[ -f $DIR/$name.pid ]] && kill -0 "$(cat "$DIR/$name.pid")" 2>/dev/null; then
        echo "$name is already running" >&2
        return 1
    fi
    ROCKETMQ_HOME="$DIR/home" "$BIN/rocketmq-broker-rust" -c "$DIR/$name.toml" -n "$NAMESRV_ADDR" \
        >>"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
    deadline=$((SECONDS + 60))
    until port_open "$port" && route_names "127.0.0.1:$port"; do
        if ((SECONDS > deadline)); then
            echo "$name did not come back within 60 s; log in $DIR/$name.log" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "$name started on 127.0.0.1:$port"
}

restart_broker() {
    local name=${1:-broker-a} signal=${2:-TERM} down=${3:-0}
    stop_broker "$name" "$signal"
    sleep "$down"
    start_broker "$name"
}

# Restarts the (plain) nameserver on its port; it comes back empty, and the
# brokers register again on their next registration (every 30 s).
restart_namesrv() {
    local signal=${1:-TERM} down=${2:-0}
    stop_process "$DIR/namesrv.pid" "$signal"
    echo "namesrv stopped ($signal)"
    sleep "$down"
    "$BIN/rocketmq-namesrv-rust" --listenPort "$NAMESRV_PORT" --bindAddress 127.0.0.1 \
        --rocketmqHome "$DIR/home" --kvConfigPath "$DIR/home/kvConfig.json" \
        >>"$DIR/namesrv.log" 2>&1 &
    echo $! >"$DIR/namesrv.pid"
    local deadline=$((SECONDS + 30))
    until port_open "$NAMESRV_PORT"; do
        if ((SECONDS > deadline)); then
            echo "the nameserver did not come back within 30 s" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "namesrv started on $NAMESRV_ADDR"
}

status() {
    local pidfile running=0
    for pidfile in "$DIR"/*.pid; do
        [[ -f $pidfile ]] || continue
        if kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "$(basename "$pidfile" .pid): running (pid $(cat "$pidfile"))"
            running=1
        fi
    done
    ((running)) || { echo "not running"; return 1; }
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
stop-broker) stop_broker "${@:2}" ;;
start-broker) start_broker "${@:2}" ;;
restart-broker) restart_broker "${@:2}" ;;
restart-namesrv) restart_namesrv "${@:2}" ;;
*) echo "usage: $0 start|stop|status|stop-broker|start-broker|restart-broker|restart-namesrv" >&2; exit 2 ;;
esac
