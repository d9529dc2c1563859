#!/usr/bin/env bash
# Runs the same load against Prosody and ejabberd (Debian's packages) and
# CASP3R (built from this tree) and prints one Markdown table: idle RSS,
# RSS per connected client, logins/s, messages/s and latency at a fixed
# offered rate, with CASP3R's ratios against its targets.
#
#   bench/compare.sh                  # 1,000 clients; 3 to 5 minutes
#   bench/compare.sh --quick          # 20 clients, about 30 s: a smoke test
#   bench/compare.sh --users 500 --only casp3r --only prosody
#
# Each server runs alone, one after the other, as a private child process:
# its own folder under a temporary one, its own loopback address
# (127.0.0.21 CASP3R, .22 Prosody, .23 ejabberd; override with CASP3R_IP,
# PROSODY_IP, EJABBERD_IP), only a c2s STARTTLS listener on port 5222, logs
# at warn, no rate limiting, SCRAM-SHA-1 with 4096 iterations, the same
# ECDSA P-256 certificate. With 2 CPUs or more the server is pinned to CPU
# 0 and the load tool (bench/load) to CPU 1 (SERVER_CPU, LOAD_CPU).
#
# Accounts are made the fast way for each: CASP3R registers them in-band
# (XEP-0077), Prosody in one `prosodyctl shell` call, ejabberd with
# ejabberd_auth:try_register evaluated at boot. The server is then
# restarted, so that every figure is that of a fresh process. Then four
# runs of bench/load, each logging all the clients in anew:
#   1. idle:  log in (32 at a time), hold HOLD; RSS before and with them
#   2. chat:  MESSAGES messages each to the next user, one in flight each
#   3. paced: MESSAGES messages each, RATE messages/s offered in all
#   4. login: each user logs in and out once, untimed, then all log in
#      (32 at a time), timed: logins/s. The load tool keeps each user's
#      SCRAM keys from the first login, as clients that store the salted
#      password do, so that its own 4,096 PBKDF2 iterations per login do
#      not cap what is measured (the server's work is the same)
#
# Prosody and ejabberd are installed with apt-get if missing (as root; a
# policy-rc.d keeps their system services from starting). Every step is
# bounded by `timeout` or a bounded wait; the servers are stopped on exit.
set -euo pipefail

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
	cat <<'EOF'
Flags:
  --quick         a few clients and messages: seconds per server, for CI
  --users N       clients (default 1000; --quick: 20)
  --only SERVER   casp3r, prosody or ejabberd; repeat for several
Environment: MESSAGES (20; --quick 5), RATE (1000), HOLD (10s; --quick 1s),
  SERVER_CPU (0), LOAD_CPU (1), CASP3R_IP, PROSODY_IP, EJABBERD_IP,
  MEMORY and GC_PERCENT (CASP3R's [limits] memory and gc_percent)
EOF
}

quick=0
USERS=
only=()
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--users)
		[ $# -ge 2 ] || { usage >&2; exit 2; }
		USERS=$2
		shift
		;;
	--users=*) USERS=${1#*=} ;;
	--only)
		[ $# -ge 2 ] || { usage >&2; exit 2; }
		only+=("$2")
		shift
		;;
	--only=*) only+=("${1#*=}") ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "compare: unknown argument $1" >&2
		usage >&2
		exit 2
		;;
	esac
	shift
done

if [ "$quick" = 1 ]; then
	USERS=${USERS:-20}
	MESSAGES=${MESSAGES:-5}
	HOLD=${HOLD:-1s}
	SETTLE=0.5s    # the load tool's wait before each memory reading
	IDLE_WAIT=1    # seconds between a server's start and its idle reading
else
	USERS=${USERS:-1000}
	MESSAGES=${MESSAGES:-20}
	HOLD=${HOLD:-10s}
	SETTLE=3s
	IDLE_WAIT=5
fi
RATE=${RATE:-1000}
case $USERS in '' | *[!0-9]* | 0) echo "compare: --users wants a positive number, not '$USERS'" >&2; exit 2 ;; esac
[ "$USERS" -le 10000 ] || { echo "compare: --users $USERS: at most 10000" >&2; exit 2; }

chosen=" "
for s in "${only[@]:-casp3r prosody ejabberd}"; do
	for s in ${s//,/ }; do
		case $s in
		casp3r | prosody | ejabberd) chosen+="$s " ;;
		*) echo "compare: --only $s: want casp3r, prosody or ejabberd" >&2; exit 2 ;;
		esac
	done
done
servers=() # always in this order: CASP3R's setup makes the certificate
for s in casp3r prosody ejabberd; do
	[[ $chosen != *" $s "* ]] || servers+=("$s")
done

declare -A IPS=([casp3r]=${CASP3R_IP:-127.0.0.21} [prosody]=${PROSODY_IP:-127.0.0.22} [ejabberd]=${EJABBERD_IP:-127.0.0.23})
for s in "${servers[@]}"; do
	[[ ${IPS[$s]} =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] ||
		{ echo "compare: $s address ${IPS[$s]} is not in 127.0.0.0/8" >&2; exit 2; }
done

if [ "$(nproc)" -ge 2 ]; then
	SERVER_CPU=${SERVER_CPU:-0}
	LOAD_CPU=${LOAD_CPU:-1}
else
	SERVER_CPU=${SERVER_CPU:-}
	LOAD_CPU=${LOAD_CPU:-}
fi
DOMAIN=bench.test
PREFIX=load
PASSWORD=load-password

cd "$(dirname "$0")/.."
. bench/compare/servers.sh

# ---------------------------------------------------------------- packages

installed() { # PACKAGE...
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
	done
}

# ensure_packages installs what the chosen servers need, never letting a
# package start its system service (policy-rc.d exit 101).
ensure_packages() {
	local want=() missing=() p made_policy=0
	case " ${servers[*]} " in *" prosody "*) want+=(prosody lua-unbound) ;; esac
	case " ${servers[*]} " in *" ejabberd "*) want+=(ejabberd) ;; esac
	[ ${#want[@]} -gt 0 ] || return 0
	if ! command -v dpkg-query >/dev/null; then
		command -v prosody >/dev/null || [[ " ${servers[*]} " != *" prosody "* ]] || die "prosody is not installed"
		[ -x /usr/sbin/ejabberdctl ] || [[ " ${servers[*]} " != *" ejabberd "* ]] || die "ejabberd is not installed"
		return 0
	fi
	for p in "${want[@]}"; do installed "$p" || missing+=("$p"); done
	[ ${#missing[@]} -gt 0 ] || return 0
	[ "$(id -u)" = 0 ] || die "missing packages: ${missing[*]} (install them, or leave them out with --only)"
	echo "installing ${missing[*]} (their system services are not started)"
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		made_policy=1
	fi
	local rc=0
	DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq || true
	DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get install -y -q "${missing[@]}" || rc=$?
	[ $made_policy = 0 ] || rm -f /usr/sbin/policy-rc.d
	[ $rc = 0 ] || die "apt-get install ${missing[*]} failed"
}

# ---------------------------------------------------------------- the runs

tmp=$(mktemp -d "${TMPDIR:-/tmp}/casp3r-compare.XXXXXX")
cleanup() {
	stop_child
	stop_server
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# loadtool runs bench/load against the current server, pinned, bounded.
loadtool() {
	local pre=()
	[ -z "$LOAD_CPU" ] || pre=(taskset -c "$LOAD_CPU")
	bg_wait timeout 660 "${pre[@]}" "$tmp/bin/load" -addr "$ip:5222" -domain "$DOMAIN" \
		-prefix "$PREFIX" -password "$PASSWORD" -timeout 10m "$@"
}

# measure NAME: the four runs against the server just started; each
# writes the load tool's JSON summary to $tmp/out/NAME-RUN.json.
measure() {
	local name=$1 run rc
	sleep "$IDLE_WAIT"
	for run in idle chat paced login; do
		local args=(-users "$USERS" -concurrency 32 -pid "$pid" -json)
		case $run in
		idle) args+=(-scenario idle -hold "$HOLD" -settle "$SETTLE") ;;
		chat) args+=(-scenario chat -messages "$MESSAGES" -rate 0 -settle 1s) ;;
		paced) args+=(-scenario chat -messages "$MESSAGES" -rate "$RATE" -settle 1s) ;;
		login) args+=(-scenario login -warm -settle 0s) ;;
		esac
		rc=0
		loadtool "${args[@]}" >"$tmp/out/$name-$run.json" 2>"$tmp/out/$name-$run.err" || rc=$?
		echo "$name: $run run: $(summary_line "$tmp/out/$name-$run.json")"
		if [ $rc != 0 ]; then
			echo "$name: the $run run exited with status $rc" >&2
			cat "$tmp/out/$name-$run.err" >&2
			grep -A8 '"errors"' "$tmp/out/$name-$run.json" >&2 || true
		fi
	done
}

# summary_line prints a few figures of one JSON summary, for the progress log.
summary_line() {
	tr -d ' \n' <"$1" | grep -oE '"(logins_per_second|messages_per_second|rss_idle_kb|rss_per_client_kb|login_failures|messages_lost)":[0-9.]+' |
		tr '\n' ' ' || echo "(no summary)"
}

# Prosody and ejabberd keep the soft limit they are given: 1,000 clients
# need more descriptors than the common default of 1024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((USERS + 200)) ] ||
	die "the open files limit, $(ulimit -n), is too low for $USERS clients (raise ulimit -Hn)"

ensure_packages
echo "building casp3r and the load tool..."
mkdir -p "$tmp/out"
CGO_ENABLED=0 timeout 600 go build -o "$tmp/bin/casp3r" ./cmd/casp3r
timeout 600 go build -o "$tmp/bin/load" ./bench/load
timeout 600 go build -o "$tmp/bin/table" ./bench/compare

version_casp3r=$(git describe --always --dirty 2>/dev/null || "$tmp/bin/casp3r" version)
version_prosody=$(prosodyctl about 2>/dev/null | sed -n 's/^Prosody \([0-9][^ ]*\).*/\1/p' | head -n 1) || true
version_ejabberd=$(ls -d "$(ejabberd_libs 2>/dev/null)"/ejabberd-[0-9]* 2>/dev/null | sed -n 's/.*ejabberd-//p' | head -n 1) || true

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "$USERS clients, $MESSAGES messages each, paced run at $RATE msg/s; server CPU ${SERVER_CPU:-any}, load tool CPU ${LOAD_CPU:-any}; load average $load_before"

# CASP3R's setup makes the certificate all three use; without CASP3R in
# the run, a throwaway data folder makes it.
if [[ " ${servers[*]} " != *" casp3r "* ]]; then
	"$tmp/bin/casp3r" init --data "$tmp/certgen" --domain "$DOMAIN" --listen 127.0.0.1 >/dev/null
	cp "$tmp/certgen/tls/cert.pem" "$tmp/cert.pem"
	cp "$tmp/certgen/tls/key.pem" "$tmp/key.pem"
fi
for s in "${servers[@]}"; do
	ip=${IPS[$s]}
	echo "== $s on $ip"
	"${s}_setup"
	"${s}_start"
	measure "$s"
	"${s}_stop"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "### $USERS clients, $MESSAGES messages each; $(date -u '+%Y-%m-%d %H:%M UTC'); load average $load_before before, $load_after after"
echo
"$tmp/bin/table" -dir "$tmp/out" -rate "$RATE" \
	-casp3r "CASP3R $version_casp3r" \
	-prosody "Prosody ${version_prosody:-?}" \
	-ejabberd "ejabberd ${version_ejabberd:-?}"
