#!/usr/bin/env bash
# Measures a three-node cluster against one node, on this machine:
#   - each node's RSS idle and with USERS clients spread over the three;
#   - chat at saturation between users on different nodes (msgs/s), and the
#     same load against one node (the default build, no cluster);
#   - one-way latency p50/p99 between users on different nodes at RATE
#     messages/s offered.
#
#   bench/run-cluster.sh                       # 1,000 users, 20 messages each
#   USERS=300 MESSAGES=10 bench/run-cluster.sh # quicker
#
# Nodes a, b, c on 127.0.0.31-33 (routes on port 7422), the single node on
# 127.0.0.34; a temporary folder removed on exit. Every client sends to the
# next user, and the clients are dealt to the nodes in turn, so every message
# crosses from one node to another. Accounts are registered in-band through
# node a, then every node is restarted, so the figures are those of fresh
# processes. Every step is bounded by `timeout` or a bounded wait.
set -euo pipefail

USERS=${USERS:-1000}
MESSAGES=${MESSAGES:-20}
RATE=${RATE:-1000}
DOMAIN=bench.test
IPS=(127.0.0.31 127.0.0.32 127.0.0.33)
SINGLE=127.0.0.34
NAMES=(a b c)

cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/casp3r-cluster-bench.XXXXXX")
pids=()
cleanup() {
	stop_all
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

stop_all() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 300); do # up to 30 s each for a clean shutdown
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	pids=()
}

# wait_port IP: up to 120 s for a client port (a cluster node opens it once
# it has joined a quorum and caught up).
wait_port() {
	for _ in $(seq 1200); do
		if (exec 3<>"/dev/tcp/$1/5222") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "nothing listens on $1:5222 after 120 s; logs:" >&2
	tail -n 20 "$tmp"/*.log >&2
	exit 1
}

# start DIR IP BINARY: one node in the background.
start() {
	"$3" serve --data "$1" 2>>"$1.log" &
	pids+=($!)
}

start_cluster() {
	local i
	for i in 0 1 2; do
		start "$tmp/${NAMES[$i]}" "${IPS[$i]}" "$tmp/casp3r-cluster"
	done
	for i in 0 1 2; do
		wait_port "${IPS[$i]}"
	done
}

# configure DIR: open registration, warnings only, no rate limit in the way.
configure() {
	sed -i -e 's/^registration = .*/registration = "open"/' -e 's/^level = .*/level = "warn"/' \
		-e 's/^stanzas_per_second = .*/stanzas_per_second = 1000000/' \
		-e 's/^max_connections = .*/max_connections = 10000/' "$1/casp3r.toml"
	grep -q '^registration = "open"' "$1/casp3r.toml"
}

load() {
	timeout 600 "$tmp/load" -domain "$DOMAIN" -timeout 9m "$@"
}

# rss PID: VmRSS in KB.
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# rss_all LABEL: one line with each node's RSS.
rss_all() {
	local line="$1:" i
	for i in 0 1 2; do
		line+=" ${NAMES[$i]} $(awk -v k="$(rss "${pids[$i]}")" 'BEGIN {printf "%.1f MB", k/1024}')"
	done
	echo "$line"
}

echo "building casp3r (cluster and single-node builds) and the load tool..."
CGO_ENABLED=0 go build -tags cluster -o "$tmp/casp3r-cluster" ./cmd/casp3r
CGO_ENABLED=0 go build -o "$tmp/casp3r" ./cmd/casp3r
go build -o "$tmp/load" ./bench/load

addrs=$(printf '%s:5222,' "${IPS[@]}")
addrs=${addrs%,}
routes=()
for ip in "${IPS[@]}"; do routes+=("$ip:7422"); done

"$tmp/casp3r-cluster" init --data "$tmp/a" --domain "$DOMAIN" --listen "${IPS[0]}" \
	--cluster-name a --cluster-listen "${routes[0]}" --cluster-peers "${routes[1]},${routes[2]}" >/dev/null
token=$("$tmp/casp3r-cluster" cluster token --data "$tmp/a")
for i in 1 2; do
	"$tmp/casp3r-cluster" init --data "$tmp/${NAMES[$i]}" --listen "${IPS[$i]}" \
		--join "${routes[0]}" --token "$token" --cluster-name "${NAMES[$i]}" --cluster-listen "${routes[$i]}" >/dev/null
done
for n in "${NAMES[@]}"; do configure "$tmp/$n"; done
"$tmp/casp3r" init --data "$tmp/single" --domain "$DOMAIN" --listen "$SINGLE" >/dev/null
configure "$tmp/single"

echo "registering $USERS accounts in-band through node a (and on the single node)..."
start_cluster
load -addr "${IPS[0]}:5222" -users "$USERS" -concurrency 32 -scenario login -register -presence=false | grep '^logins'
stop_all
start "$tmp/single" "$SINGLE" "$tmp/casp3r"
wait_port "$SINGLE"
load -addr "$SINGLE:5222" -users "$USERS" -concurrency 32 -scenario login -register -presence=false | grep '^logins'
stop_all

echo
echo "== cluster of three: fresh processes"
start_cluster
sleep 5 # let the nodes settle (heartbeats, session table) before reading RSS
rss_all "idle RSS"
# hold ADDRS LABEL: USERS clients logged in through ADDRS for 20 s; each
# node's RSS is read 5 s after the last login.
hold() {
	load -addr "$1" -users "$USERS" -concurrency 32 -scenario idle -hold 20s >"$tmp/idle.txt" &
	local loadpid=$!
	for _ in $(seq 1200); do
		grep -q '^logins' "$tmp/idle.txt" 2>/dev/null && break
		kill -0 "$loadpid" 2>/dev/null || break
		sleep 0.1
	done
	sleep 5
	rss_all "$2"
	wait "$loadpid" || true
	grep -E '^(logins|dropped|error)' "$tmp/idle.txt" || true
}
hold "$addrs" "RSS with $USERS clients ($((USERS / 3)) per node)"
sleep 5
rss_all "RSS 5 s after they left"
hold "${IPS[0]}:5222" "RSS with $USERS clients all on node a"
echo "chat at saturation, $USERS users x $MESSAGES messages, every message between two nodes:"
load -addr "$addrs" -users "$USERS" -concurrency 32 -scenario chat -messages "$MESSAGES" |
	grep -E '^(logins|messages|latency|dropped|error)'
echo "chat at $RATE msg/s offered, every message between two nodes:"
load -addr "$addrs" -users "$USERS" -concurrency 32 -scenario chat -messages "$MESSAGES" -rate "$RATE" |
	grep -E '^(messages|latency|dropped|error)'
stop_all

echo
echo "== one node (default build, no cluster): fresh process"
start "$tmp/single" "$SINGLE" "$tmp/casp3r"
wait_port "$SINGLE"
echo "chat at saturation, $USERS users x $MESSAGES messages:"
load -addr "$SINGLE:5222" -users "$USERS" -concurrency 32 -scenario chat -messages "$MESSAGES" -pid "${pids[0]}" -settle 1s |
	grep -E '^(logins|messages|latency|dropped|error|rss)'
echo "chat at $RATE msg/s offered:"
load -addr "$SINGLE:5222" -users "$USERS" -concurrency 32 -scenario chat -messages "$MESSAGES" -rate "$RATE" |
	grep -E '^(messages|latency|dropped|error)'
stop_all
for f in "$tmp"/*.log; do
	if grep -v 'component=nats' "$f" | grep -q .; then
		echo "$(basename "$f") (warnings and errors, nats-server's left out):"
		grep -v 'component=nats' "$f" | tail -n 20
	fi
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
