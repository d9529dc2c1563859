# Shared by the bench/run-*.sh scripts (sourced, not run): builds casp3r
# and the load tool into a temporary folder, makes a data folder with open
# registration listening on $IP, and starts and stops the server. The
# caller sets IP and DOMAIN; the folder is removed on exit.

cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/casp3r-bench.XXXXXX")
pid=

stop_server() {
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 150); do # up to 15s for a clean shutdown
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "server did not stop within 15s of SIGTERM; killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	pid=
}
cleanup() {
	stop_server
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# SERVER_CPU and LOAD_CPU, if set, pin the server and the load tool to
# those CPUs (taskset), as bench/compare.sh does.
start_server() {
	${SERVER_CPU:+taskset -c "$SERVER_CPU"} "$tmp/casp3r" serve --data "$tmp/data" 2>>"$tmp/server.log" &
	pid=$!
	for _ in $(seq 100); do # up to 10s to listen
		if (exec 3<>"/dev/tcp/$IP/5222") 2>/dev/null; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "server did not start listening on $IP:5222; its log:" >&2
	cat "$tmp/server.log" >&2
	exit 1
}

# setup builds both binaries and makes the data folder: registration open,
# logging at warn. MAXCONN sets c2s.max_connections; MEMORY and GC_PERCENT,
# if set, limits.memory (e.g. "200MB") and limits.gc_percent.
setup() {
	echo "building casp3r and the load tool..."
	CGO_ENABLED=0 go build -o "$tmp/casp3r" ./cmd/casp3r
	go build -o "$tmp/load" ./bench/load
	"$tmp/casp3r" init --data "$tmp/data" --domain "$DOMAIN" --listen "$IP" >/dev/null
	sed -i -e 's/^registration = .*/registration = "open"/' -e 's/^level = .*/level = "warn"/' \
		-e "s/^max_connections = .*/max_connections = ${MAXCONN:-10000}/" "$tmp/data/casp3r.toml"
	[ -z "${MEMORY:-}" ] || sed -i -e "s/^memory = .*/memory = \"$MEMORY\"/" "$tmp/data/casp3r.toml"
	[ -z "${GC_PERCENT:-}" ] || sed -i -e "s/^gc_percent = .*/gc_percent = $GC_PERCENT/" "$tmp/data/casp3r.toml"
	grep -q '^registration = "open"' "$tmp/data/casp3r.toml"
	"$tmp/casp3r" check-config --data "$tmp/data" >/dev/null
}

# load runs the load tool against the server, bounded in time.
load() {
	timeout 600 ${LOAD_CPU:+taskset -c "$LOAD_CPU"} "$tmp/load" -addr "$IP:5222" -domain "$DOMAIN" -timeout 9m "$@"
}

# register makes accounts prefix1..prefixN in-band with a server started
# for it, then stops that server.
register() {
	echo "registering $1 accounts in-band..."
	start_server
	load -users "$1" -concurrency 32 -scenario login -register -presence=false >"$tmp/register.txt" || {
		cat "$tmp/register.txt"
		exit 1
	}
	grep '^logins' "$tmp/register.txt"
	stop_server
}

# show_log prints what the server logged (warnings and errors), if anything.
show_log() {
	if [ -s "$tmp/server.log" ]; then
		echo "server log (warnings and errors):"
		cat "$tmp/server.log"
	fi
}
