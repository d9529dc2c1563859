#!/usr/bin/env bash
# Measures casp3r's memory: VmRSS of a freshly started server, then with
# USERS idle clients connected (STARTTLS, SCRAM-SHA-1, bound, available).
#
#   bench/run-memory.sh            # 1000 clients, held 20s
#   USERS=200 HOLD=5s bench/run-memory.sh
#   MAXCONN=20000 USERS=19000 HOLD=10s bench/run-memory.sh
#   MEMORY=200MB GC_PERCENT=35 bench/run-memory.sh   # [limits] memory, gc_percent
#
# Everything happens in a temporary folder on 127.0.0.5 (ports 5222, 5223,
# 5443 there must be free). The accounts are registered in-band (XEP-0077,
# registration = "open") by a first run; the server is then restarted so
# that the idle figure is the one of a fresh process, not one that has just
# hashed 1000 passwords. Each step is bounded by `timeout`.
set -euo pipefail

USERS=${USERS:-1000}
HOLD=${HOLD:-20s}
IP=${IP:-127.0.0.5}
DOMAIN=bench.test
. "$(dirname "$0")/lib.sh"

setup
register "$USERS"
echo "restarted the server; holding $USERS idle clients for $HOLD..."
start_server
sleep 1
load -users "$USERS" -concurrency 32 -scenario idle -hold "$HOLD" -pid "$pid" -settle 3s
stop_server
show_log
