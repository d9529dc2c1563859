#!/usr/bin/env bash
# Measures chat throughput and one-way latency: USERS clients each send
# MESSAGES chat messages to the next one's bare JID, one message in flight
# per sender (saturation), or RATE messages/s in all when RATE is set.
#
#   bench/run-chat.sh                    # 200 users x 20 messages
#   USERS=200 MESSAGES=200 bench/run-chat.sh
#   RATE=2000 MESSAGES=40 bench/run-chat.sh
#   USERS=1000 RATE=1000 SERVER_CPU=0 LOAD_CPU=1 bench/run-chat.sh   # compare.sh's paced run
#
# Like run-memory.sh: a temporary folder on 127.0.0.5, accounts registered
# in-band first, then a fresh server. RUNS chat runs go against that server
# one after the other (each logs in anew). Each step is bounded by `timeout`.
set -euo pipefail

USERS=${USERS:-200}
MESSAGES=${MESSAGES:-20}
RATE=${RATE:-0}
RUNS=${RUNS:-3}
IP=${IP:-127.0.0.5}
DOMAIN=bench.test
. "$(dirname "$0")/lib.sh"

setup
register "$USERS"
start_server
for run in $(seq "$RUNS"); do
	echo "chat run $run: $USERS users x $MESSAGES messages, rate $RATE (0 = saturation)"
	load -users "$USERS" -concurrency 32 -scenario chat -messages "$MESSAGES" -rate "$RATE" -pid "$pid" -settle 1s |
		grep -E '^(logins|login CPU|messages|latency|message CPU|dropped|error)'
done
stop_server
show_log
