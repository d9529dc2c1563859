# shellcheck shell=bash
# Sourced by bench/compare.sh, not run: how to configure, fill with
# accounts, start and stop each of the three servers. Each one runs as a
# private child process of the script, in its own folder under $tmp,
# listening only on its own loopback address ($ip) at port 5222: no s2s,
# HTTP or direct-TLS listener, logs at warn, no rate limiting, SCRAM with
# 4096 iterations, the same ECDSA P-256 certificate.
#
# The caller sets: tmp, DOMAIN, PREFIX, PASSWORD, SERVER_CPU; before each
# server: ip. The functions set: pid (the process to measure), dir.

# started_pid is the process the script started for the running server;
# pid is what is measured (the same process for all three: taskset, env,
# erl and erlexec all exec the next program).
pid=
started_pid=

die() {
	echo "compare: $*" >&2
	exit 1
}

# child is a helper command running under bg_wait.
child=

# bg_wait CMD...: runs CMD in the background and waits for it. Bash runs
# a trap only once the foreground command has ended; waiting instead lets
# a signal stop the script (and its servers) at once. stop_child ends CMD.
bg_wait() {
	local rc=0
	"$@" &
	child=$!
	wait "$child" || rc=$?
	child=
	return $rc
}

stop_child() {
	[ -n "$child" ] || return 0
	kill -TERM "$child" 2>/dev/null || true
	wait "$child" 2>/dev/null || true
	child=
}

# listening reports whether something listens on $ip:5222, from
# /proc/net/tcp (connecting to find out would log a failed stream).
listening() {
	local a b c d want
	IFS=. read -r a b c d <<<"$ip"
	want=$(printf '%02X%02X%02X%02X:%04X' "$d" "$c" "$b" "$a" 5222)
	awk -v w="$want" '$2 == w && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp
}

# port_free fails if $ip:5222 is already taken.
port_free() {
	! listening || die "$ip:5222 is already in use"
}

# wait_until SECONDS CMD...: polls CMD every 0.1s until it succeeds, the
# server exits or SECONDS pass.
wait_until() {
	local n=$(($1 * 10))
	shift
	for _ in $(seq "$n"); do
		"$@" && return 0
		kill -0 "$started_pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# launch NAME CMD...: starts CMD pinned, as a child, output to its console.
launch() {
	local name=$1
	shift
	# A simple command in the background, so that $! is the program itself
	# (a function would run in a subshell with its own pid).
	if [ -n "$SERVER_CPU" ]; then
		taskset -c "$SERVER_CPU" "$@" >>"$dir/console.log" 2>&1 </dev/null &
	else
		"$@" >>"$dir/console.log" 2>&1 </dev/null &
	fi
	started_pid=$!
	pid=$started_pid
	echo "$name: pid $pid"
}

# stop_server sends SIGTERM and waits up to 20s, then SIGKILL. It only ever
# signals the process it started.
stop_server() {
	[ -n "$started_pid" ] || return 0
	kill -TERM "$started_pid" 2>/dev/null || true
	for _ in $(seq 200); do
		kill -0 "$started_pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$started_pid" 2>/dev/null; then
		echo "compare: pid $started_pid did not stop within 20s of SIGTERM; killing it" >&2
		kill -KILL "$started_pid" 2>/dev/null || true
	fi
	wait "$started_pid" 2>/dev/null || true
	started_pid=
	pid=
}

# fail_start NAME LOG...: stops what was started, shows its logs, exits.
fail_start() {
	local name=$1
	shift
	stop_server
	for f in "$dir/console.log" "$@"; do
		[ -s "$f" ] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }
	done
	die "$name did not start on $ip:5222"
}

# expected is what the servers log at warn or above in every run: being
# stopped, the self-signed certificate, ejabberd's lines from before its
# log level is set, and its advice to load mod_pubsub for mod_private.
expected='Received SIGTERM|self-signed certificate|\[info\]|\[notice\]|mod_pubsub is recommended'

# show_warnings NAME LOG...: prints what a server logged at warn or above,
# but for the expected lines.
show_warnings() {
	local name=$1 f lines
	shift
	for f in "$@"; do
		[ -s "$f" ] || continue
		lines=$(grep -Ev "$expected" "$f" | tail -n 20) || true
		if [ -n "$lines" ]; then
			echo "$name logged (warnings and errors, last 20 lines of $f):"
			echo "$lines"
		fi
	done
}

# ---------------------------------------------------------------- CASP3R

# casp3r_setup builds the data folder and registers the accounts in-band
# (XEP-0077, registration = "open") with a first server. It also makes the
# certificate every server uses ($tmp/cert.pem, $tmp/key.pem).
casp3r_setup() {
	dir=$tmp/casp3r
	"$tmp/bin/casp3r" init --data "$dir" --domain "$DOMAIN" --listen "$ip" >/dev/null
	local cfg=$dir/casp3r.toml
	# No listener but c2s's STARTTLS port; no rate limit worth the name.
	sed -i \
		-e 's/^registration = .*/registration = "open"/' \
		-e 's/^direct_tls_port = .*/direct_tls_port = 0/' \
		-e '/^\[s2s\]/,/^\[/ s/^port = .*/port = 0/' \
		-e '/^\[https\]/,/^\[/ s/^port = .*/port = 0/' \
		-e 's/^scram_iterations = .*/scram_iterations = 4096/' \
		-e 's/^stanzas_per_second = .*/stanzas_per_second = 1000000/' \
		-e 's/^level = .*/level = "warn"/' \
		"$cfg"
	# MEMORY and GC_PERCENT, if set, try [limits] memory and gc_percent.
	[ -z "${MEMORY:-}" ] || sed -i -e "s/^memory = .*/memory = \"$MEMORY\"/" "$cfg"
	[ -z "${GC_PERCENT:-}" ] || sed -i -e "s/^gc_percent = .*/gc_percent = $GC_PERCENT/" "$cfg"
	"$tmp/bin/casp3r" check-config --data "$dir" >/dev/null || die "casp3r.toml: $("$tmp/bin/casp3r" check-config --data "$dir" 2>&1)"
	cp "$dir/tls/cert.pem" "$tmp/cert.pem"
	cp "$dir/tls/key.pem" "$tmp/key.pem"
	casp3r_start
	echo "casp3r: registering $USERS accounts in-band"
	loadtool -users "$USERS" -concurrency 32 -scenario login -register -presence=false >"$dir/register.txt" ||
		{ cat "$dir/register.txt" >&2; stop_server; die "casp3r: registering the accounts failed"; }
	stop_server
}

casp3r_start() {
	dir=$tmp/casp3r
	port_free
	launch casp3r "$tmp/bin/casp3r" serve --data "$dir"
	wait_until 30 listening || fail_start casp3r
}

casp3r_stop() {
	stop_server
	show_warnings casp3r "$dir/console.log"
}

# --------------------------------------------------------------- Prosody

prosody_write_config() {
	local root=false
	[ "$(id -u)" = 0 ] && root=true # else it switches to the prosody user
	mkdir -p "$dir/data" "$dir/certs"
	cp "$tmp/cert.pem" "$dir/certs/$DOMAIN.crt"
	cp "$tmp/key.pem" "$dir/certs/$DOMAIN.key"
	printf 'nameserver 127.0.0.1\n' >"$dir/resolv.conf"
	cat >"$dir/prosody.cfg.lua" <<EOF
-- Written by bench/compare.sh: a private Prosody for one benchmark.
run_as_root = $root
data_path = "$dir/data"
admin_socket = "$dir/prosody.sock"
certificates = "$dir/certs"
log = { { levels = { min = "warn" }, to = "file", filename = "$dir/prosody.log" } }

-- c2s on one loopback address; nothing else listens.
interfaces = { "$ip" }
local_interfaces = { "$ip" }
c2s_ports = { 5222 }
s2s_ports = { }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
legacy_ssl_ports = { }
http_ports = { }
https_ports = { }

-- No mod_limits: no rate limiting. admin_shell creates the accounts.
modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "carbons"; "pep"; "private"; "blocklist";
	"vcard4"; "vcard_legacy"; "version"; "uptime"; "time"; "ping"; "admin_shell";
}
authentication = "internal_hashed"
default_iteration_count = 4096 -- Prosody's default is 10000
storage = "internal"
c2s_require_encryption = true
allow_registration = false

-- DNS (unused without s2s) never leaves the machine.
unbound = { resolvconf = "$dir/resolv.conf" }

VirtualHost "$DOMAIN"
	ssl = { certificate = "$dir/certs/$DOMAIN.crt"; key = "$dir/certs/$DOMAIN.key" }
EOF
}

# prosody_setup writes the config and creates the accounts in one
# `prosodyctl shell` call (mod_admin_shell) against a first server.
prosody_setup() {
	dir=$tmp/prosody
	prosody_write_config
	prosody_start
	# The admin socket opens slightly after the listener.
	wait_until 30 test -S "$dir/prosody.sock" || fail_start prosody "$dir/prosody.log"
	echo "prosody: creating $USERS accounts with prosodyctl shell"
	bg_wait timeout 600 prosodyctl --config "$dir/prosody.cfg.lua" shell \
		">local um = require'core.usermanager'; local n = 0; for i = 1, $USERS do local u = '$PREFIX'..i; if not um.user_exists(u, '$DOMAIN') then assert(um.create_user(u, '$PASSWORD', '$DOMAIN')) end; n = n + 1 end; return n" \
		>"$dir/create.txt" 2>&1 || true
	if ! grep -q "Result: $USERS\$" "$dir/create.txt"; then
		stop_server
		die "prosody: creating the accounts failed: $(cat "$dir/create.txt")"
	fi
	stop_server
}

prosody_start() {
	dir=$tmp/prosody
	port_free
	rm -f "$dir/prosody.sock"
	launch prosody prosody --config "$dir/prosody.cfg.lua" -F
	wait_until 30 listening || fail_start prosody "$dir/prosody.log"
}

prosody_stop() {
	stop_server
	show_warnings prosody "$dir/prosody.log"
}

# -------------------------------------------------------------- ejabberd

# ejabberd_libs prints where Debian's ejabberd keeps its Erlang
# applications (the ERL_LIBS that ejabberdctl sets).
ejabberd_libs() {
	sed -n "s/^ERL_LIBS=['\"]\{0,1\}\([^'\"]*\).*/\1/p" /usr/sbin/ejabberdctl | head -n 1
}

ejabberd_write_config() {
	mkdir -p "$dir/etc" "$dir/db" "$dir/log"
	cat "$tmp/cert.pem" "$tmp/key.pem" >"$dir/etc/$DOMAIN.pem"
	# Erlang's resolver: the hosts file only, DNS to 127.0.0.1:53 where
	# nothing answers, never the system's nameservers.
	cat >"$dir/etc/inetrc" <<EOF
{lookup, ["file"]}.
{resolv_conf, ""}.
{nameserver, {127,0,0,1}, 53}.
{timeout, 500}.
{retry, 1}.
EOF
	cat >"$dir/etc/ejabberd.yml" <<EOF
# Written by bench/compare.sh: a private ejabberd for one benchmark.
hosts:
  - "$DOMAIN"
loglevel: warning
log_rotate_count: 0
hide_sensitive_log_data: true
certfiles:
  - "$dir/etc/$DOMAIN.pem"

# c2s on one loopback address; nothing else listens.
listen:
  -
    port: 5222
    ip: "$ip"
    module: ejabberd_c2s
    starttls_required: true
    backlog: 128          # the default, 5, drops bursts of connects
    max_stanza_size: 262144
    shaper: none
    access: c2s

auth_method: internal
auth_password_format: scram   # SCRAM-SHA-1, 4096 iterations
disable_sasl_mechanisms:
  - "digest-md5"
  - "X-OAUTH2"

acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
# No traffic shaping (Debian's default config limits c2s to 3000 B/s).
shaper_rules:
  max_user_sessions: 10
  max_user_offline_messages: 5000
  c2s_shaper: none
  s2s_shaper: none

modules:
  mod_adhoc: {}
  mod_blocking: {}
  mod_caps: {}
  mod_carboncopy: {}
  mod_client_state: {}
  mod_disco: {}
  mod_last: {}
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_ping: {}
  mod_privacy: {}
  mod_private: {}
  mod_roster:
    versioning: true
  mod_stream_mgmt: {}
  mod_vcard: {}
  mod_version:
    show_os: false
EOF
}

# ejabberd_boot NAME EVAL: starts the VM with Debian's runtime settings
# (those of ejabberdctl: +K true +P 250000, 32000 ports, 1400 ETS tables)
# but without Erlang distribution: no node name, no epmd, no port but c2s.
# EVAL runs once ejabberd has started; it prints "compare: ready" or
# "compare: failed".
ejabberd_boot() {
	local eval=$1 libs
	libs=$(ejabberd_libs)
	[ -n "$libs" ] || die "ejabberd: no ERL_LIBS= line in /usr/sbin/ejabberdctl"
	port_free
	: >"$dir/console.log"
	launch ejabberd env -u ERL_FLAGS -u ERL_AFLAGS -u ERL_ZFLAGS HOME="$dir" \
		ERL_LIBS="$libs" ERL_INETRC="$dir/etc/inetrc" ERL_CRASH_DUMP_BYTES=0 \
		ERL_MAX_PORTS=32000 ERL_MAX_ETS_TABLES=1400 \
		EJABBERD_CONFIG_PATH="$dir/etc/ejabberd.yml" EJABBERD_LOG_PATH="$dir/log/ejabberd.log" \
		erl +K true +P 250000 -noinput -mnesia dir "\"$dir/db\"" -s ejabberd -eval "$eval"
	# On a config error ejabberd logs [critical] and the VM stays up.
	wait_until $((120 + USERS / 50)) grep -sqE 'compare: (ready|failed)|\[critical\]' "$dir/console.log" "$dir/log/ejabberd.log" ||
		fail_start ejabberd "$dir/log/ejabberd.log"
	grep -q 'compare: ready' "$dir/console.log" || fail_start ejabberd "$dir/log/ejabberd.log"
	wait_until 30 listening || fail_start ejabberd "$dir/log/ejabberd.log"
}

# ejabberd_started is Erlang that evaluates to true once the ejabberd
# application runs.
ejabberd_started='lists:keymember(ejabberd, 1, application:which_applications())'

# ejabberd_setup writes the config and creates the accounts from the boot
# expression of a first VM, through ejabberd_auth:try_register (what
# `ejabberdctl register` calls, without a VM per account).
ejabberd_setup() {
	dir=$tmp/ejabberd
	ejabberd_write_config
	echo "ejabberd: creating $USERS accounts with ejabberd_auth:try_register"
	ejabberd_boot "Bad = case $ejabberd_started of
	false -> [ejabberd_not_started];
	true -> [{I, E} || I <- lists:seq(1, $USERS),
		E <- [ejabberd_auth:try_register(<<\"$PREFIX\", (integer_to_binary(I))/binary>>, <<\"$DOMAIN\">>, <<\"$PASSWORD\">>)],
		E =/= ok, E =/= {error, exists}]
end,
case Bad of
	[] -> io:format(\"compare: ready~n\");
	_ -> io:format(\"compare: failed ~p~n\", [lists:sublist(Bad, 3)])
end."
	stop_server
}

ejabberd_start() {
	dir=$tmp/ejabberd
	ejabberd_boot "case $ejabberd_started of
	true -> io:format(\"compare: ready~n\");
	false -> io:format(\"compare: failed~n\")
end."
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = beam.smp ] ||
		echo "compare: warning: ejabberd's pid $pid is $(cat "/proc/$pid/comm" 2>/dev/null), not beam.smp" >&2
}

ejabberd_stop() {
	stop_server
	show_warnings ejabberd "$dir/log/ejabberd.log" "$dir/log/error.log"
}
