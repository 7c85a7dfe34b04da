#!/usr/bin/env bash
# The data plane without its control plane, measured through the real server and real
# standalone proxies: a service (cmd/drover/testdata/websvc, health /healthz every
# 200 ms) under wrk's load (50 connections) while the server
#   - is stopped (SIGTERM) and started again: through the embedded proxy (which stops
#     with the server: the baseline) and through a standalone `drover proxy`;
#   - is killed (kill -9) and started again, through a standalone proxy;
#   - is upgraded in place (a second `drover server` on the same data folder), through
#     the embedded proxy;
# and how long a restarted server takes to adopt N instances (N = $REPLICAS, its own log),
# and how long `drover deploy` takes to switch, median of 5, with no standalone proxy and
# with two following the server (the deploy waits until both serve the switch).
# Prints a Markdown table and writes it to $OUT.
#
# Needs wrk (run as root on Debian and the script installs it).
# Usage: [REPLICAS=20] [CONNS=50] [OUT=/tmp/dataplane-bench.md] bench/dataplane.sh
set -euo pipefail
replicas=${REPLICAS:-20}
conns=${CONNS:-50}
out=${OUT:-/tmp/dataplane-bench.md}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
server=""
edges=()
cleanup() {
	[ -n "$server" ] && "$work/drover" env stop --all > /dev/null 2>&1 || true
	for p in $server "${edges[@]}"; do kill "$p" 2> /dev/null || true; done
	wait 2> /dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
. "$root/bench/lib.sh"

need_wrk

(cd "$root/cmd/drover" && go build -o "$work/websvc" ./testdata/websvc)
start_server --step-uids off --service-uids off
listen=${url#http://}
proxy_listen=${proxy#http://}
export DROVER_SERVER=$url DROVER_TOKEN=$token
host=web.bench.localhost

# restart [SIGNAL] [extra server flags]: stop the server and start it again on the same
# addresses; an empty SIGNAL starts a second server beside it (an in-place upgrade).
restart() {
	local sig=$1
	shift
	local t0
	t0=$(date +%s.%N)
	if [ -n "$sig" ]; then
		kill "-$sig" "$server"
		wait "$server" 2> /dev/null || true
	fi
	: > "$work/server.log"
	"$work/drover" server --data "$work/data" --listen "$listen" --proxy-listen "$proxy_listen" \
		--step-uids off --service-uids off "$@" 2> "$work/server.log" &
	local next=$!
	for _ in $(seq 600); do grep -q 'drover server listening' "$work/server.log" && break; sleep 0.05; done
	# From the signal until the new server listens: how long the old one took to stop,
	# and the new one to start (with an upgrade, the old one serves throughout).
	gap=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f s", b - a }')
	if [ -z "$sig" ]; then
		wait "$server" 2> /dev/null || true # the old one exits once the new one serves
	fi
	server=$next
}

websvc_release v1 && wait_run 1
websvc_release v2 && wait_run 2
websvc_release big "$replicas" && wait_run 3
"$work/drover" deploy web:r1 --env bench > /dev/null

# switch_time: the median of 5 deploys' "switched ... after X", in seconds.
secs() { case $1 in *ms) awk "BEGIN{print ${1%ms}/1000}" ;; *s) echo "${1%s}" ;; esac; }
switch_time() {
	local all=()
	for i in 1 2 3 4 5; do
		line=$("$work/drover" deploy "web:r$((i % 2 + 1))" --env bench | grep 'switched web in bench')
		all+=("$(secs "$(sed -n 's/.* after \([0-9.]*m\{0,1\}s\)$/\1/p' <<< "$line")")")
	done
	printf '%s\n' "${all[@]}" | sort -g | sed -n 3p
}
switch_alone=$(switch_time)

ptoken=$("$work/drover" token create --machine proxy --label bench)
for n in 1 2; do
	"$work/drover" proxy --token "$ptoken" --listen 127.0.0.1:0 --name "edge-$n" --state "$work/edge-$n" > "$work/edge-$n.out" 2>&1 &
	edges+=($!)
done
for n in 1 2; do
	for _ in $(seq 200); do grep -q 'serving' "$work/edge-$n.out" && break; sleep 0.05; done
done
edge=$(sed -n 's|.*serving [0-9]* routes on \(http://[^/ ]*\)/.*|\1|p' "$work/edge-1.out")
for _ in $(seq 100); do curl -fsS -H "Host: $host" "$edge/" > /dev/null 2>&1 && break; sleep 0.05; done
switch_edges=$(switch_time)

# under LABEL URL ACTION...: wrk for 8 s through URL, ACTION at 2 s; appends a row of
# requests and failures to $work/rows. (Not in a subshell: ACTION may restart the server.)
under() {
	local label=$1 target=$2
	shift 2
	wrk -t2 -c"$conns" -d8s -H "Host: $host" "$target/" > "$work/wrk.txt" 2>&1 &
	local w=$!
	sleep 2
	"$@"
	wait "$w" || true
	{ echo "== $label"; cat "$work/wrk.txt"; } >&2
	local requests non2xx sockerr
	requests=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$work/wrk.txt")
	non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$work/wrk.txt")
	sockerr=$(sed -n 's/.*Socket errors: \(.*\)/\1/p' "$work/wrk.txt")
	echo "| $label | $gap | ${requests:-0} | ${non2xx:-0} | ${sockerr:-none} |" >> "$work/rows"
}
under "server SIGTERM and start, embedded proxy (baseline: it stops with the server)" "$proxy" restart TERM
under "server SIGTERM and start, standalone proxy" "$edge" restart TERM
under "server kill -9 and start, standalone proxy" "$edge" restart KILL
under "in-place upgrade (second server on the data folder), embedded proxy" "$proxy" restart ""

# Adoption of $replicas instances.
"$work/drover" deploy web:r3 --env bench > /dev/null
restart TERM
for _ in $(seq 100); do grep -q 'adopted the instances' "$work/server.log" && break; sleep 0.05; done
adopt=$(sed -n 's/.*adopted the instances.* instances=\([0-9]*\) took=\([^ ]*\).*/\1 in \2/p' "$work/server.log")

{
	echo "| during (wrk, $conns connections, 8 s) | signal to new server listening | requests | non-2xx | socket errors |"
	echo "|---|---|---|---|---|"
	cat "$work/rows"
	echo
	echo "| what | result |"
	echo "|---|---|"
	echo "| a restarted server adopts N instances (its log) | ${adopt:-not found} |"
	echo "| drover deploy, start to switch, median of 5: no standalone proxy | ${switch_alone}s |"
	echo "| the same with two standalone proxies following (switched in both before it answers) | ${switch_edges}s |"
} | tee "$out"
