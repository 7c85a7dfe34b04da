#!/usr/bin/env bash
# Throughput and latency of Drover's reverse proxy (package proxy), on loopback, against
# two references under the same load:
#   direct  wrk -> backend
#   drover  wrk -> proxy.New with one route -> backend   (bench/proxyload proxy)
#   nginx   wrk -> nginx, a plain reverse proxy with a keep-alive upstream -> backend
# The backend is bench/proxyload backend, a Go server answering 23 bytes of text.
# Two loads per target, each after a 1 s warm-up: CONNS connections for SECONDS (the
# throughput run: p50 there is mostly queueing, CONNS / throughput) and 1 connection for
# SECONDS/2 (the latency run: what one hop adds to one request). ROUNDS rounds (default
# 3) interleave the targets; the table shows each target's median run.
# Prints a Markdown table, with proxy/nginx throughput and the p50 the proxy adds over
# direct, and writes it to $OUT.
#
# Needs wrk and nginx. Run as root on Debian or Ubuntu, the script installs what is
# missing with `apt-get install -y wrk nginx`; otherwise install them first. Set
# PROFILE=FILE to write a CPU profile of the proxy (view: go tool pprof -top FILE).
#
# Usage: [ROUNDS=3] [OUT=/tmp/proxy-bench.md] [PROFILE=FILE] bench/proxy.sh [SECONDS] [CONNS]
#        (default 10 s, 50 connections; about ROUNDS x 51 s)
set -euo pipefail
secs=${1:-10}
conns=${2:-50}
rounds=${ROUNDS:-3}
out=${OUT:-/tmp/proxy-bench.md}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT
host=bench.local.localhost # the proxy's route key; nginx and the backend ignore it

missing=()
for tool in wrk nginx; do command -v "$tool" > /dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
		echo "installing ${missing[*]}" >&2
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
	else
		echo "need ${missing[*]}: sudo apt-get install -y wrk nginx" >&2
		exit 1
	fi
fi
PATH=$PATH:/usr/sbin # nginx, for a user whose PATH lacks it

(cd "$root" && go build -o "$work/proxyload" ./bench/proxyload)

# start NAME CMD...: runs CMD in the background, waits for its "listening http://ADDR"
# line and sets $addr.
start() {
	local name=$1
	shift
	"$@" > "$work/$name.out" 2> "$work/$name.log" &
	pids+=($!)
	for _ in $(seq 200); do grep -q '^listening ' "$work/$name.out" && break; sleep 0.05; done
	addr=$(sed -n 's|^listening http://||p' "$work/$name.out")
	if [ -z "$addr" ]; then
		echo "$name did not start:" >&2
		cat "$work/$name.log" >&2
		exit 1
	fi
}

start backend "$work/proxyload" backend 127.0.0.1:0
backend=$addr
start drover "$work/proxyload" proxy ${PROFILE:+-cpuprofile "$PROFILE"} 127.0.0.1:0 "$host" "$backend"
drover=$addr

chmod 755 "$work" # nginx's workers run as nobody when started as root
nginx_port=$("$work/proxyload" port)
cat > "$work/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $work/nginx-body;
	proxy_temp_path $work/nginx-proxy;
	fastcgi_temp_path $work/nginx-fastcgi;
	uwsgi_temp_path $work/nginx-uwsgi;
	scgi_temp_path $work/nginx-scgi;
	upstream backend {
		server $backend;
		keepalive 128;
	}
	server {
		listen 127.0.0.1:$nginx_port;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Host \$http_host;
			proxy_set_header X-Forwarded-Proto \$scheme;
		}
	}
}
EOF
nginx -t -q -c "$work/nginx.conf" -p "$work" 2> "$work/nginx-test.log" || { cat "$work/nginx-test.log" >&2; exit 1; }
nginx -c "$work/nginx.conf" -p "$work" 2> "$work/nginx.stderr" &
pids+=($!)
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$nginx_port/" 2> /dev/null && break; sleep 0.05; done
nginx=127.0.0.1:$nginx_port

# measure ADDR CONNS SECONDS: prints "requests/s p50_ms p99_ms" from a wrk run.
measure() {
	local threads=2
	[ "$2" -lt 2 ] && threads=1
	wrk -t"$threads" -c"$2" -d1s -H "Host: $host" "http://$1/" > /dev/null # warm-up
	wrk -t"$threads" -c"$2" -d"$3"s --latency -H "Host: $host" "http://$1/" > "$work/wrk.txt"
	if grep -q 'Non-2xx\|Socket errors' "$work/wrk.txt"; then
		echo "errors while measuring $1:" >&2
		cat "$work/wrk.txt" >&2
		exit 1
	fi
	awk '
		function ms(v) {
			if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
			if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
			if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
			return v
		}
		/^Requests\/sec:/ { rps = $2 }
		$1 == "50%" { p50 = ms($2) }
		$1 == "99%" { p99 = ms($2) }
		END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }' "$work/wrk.txt"
}

# The rounds interleave the targets, so a neighbour's burst on a shared machine hits all
# three alike; each target keeps its median run (by requests/s, and by p50 for 1 conn).
declare -A runs
for round in $(seq "$rounds"); do
	for target in direct drover nginx; do
		case $target in
		direct) a=$backend ;;
		drover) a=$drover ;;
		nginx) a=$nginx ;;
		esac
		many=$(measure "$a" "$conns" "$secs")
		one=$(measure "$a" 1 $(((secs + 1) / 2)))
		runs[$target.many]+="$many"$'\n'
		runs[$target.one]+="$one"$'\n'
		echo "round $round, $target: $conns connections: $many; 1 connection: $one (requests/s p50 p99)" >&2
	done
done
median() { printf '%s' "$1" | sort -n -k"$2" | awk '{a[NR] = $0} END {print a[int((NR + 1) / 2)]}'; }
declare -A res
for target in direct drover nginx; do
	res[$target.many]=$(median "${runs[$target.many]}" 1)
	res[$target.one]=$(median "${runs[$target.one]}" 2)
done

{
	echo "# Drover proxy benchmark"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(go version | cut -d' ' -f3), $(nginx -v 2>&1 | cut -d' ' -f3), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)."
	echo "Everything on loopback on the same machine; wrk, nginx and the Go processes share the cores."
	echo
	echo "Command: \`ROUNDS=$rounds bench/proxy.sh $secs $conns\` (per target and round: wrk -t2 -c$conns -d${secs}s --latency, then wrk -t1 -c1 -d$(((secs + 1) / 2))s --latency, each after a 1 s warm-up; median of $rounds interleaved rounds)"
	echo
	echo "| target | $conns conns: requests/s | p50 ms | p99 ms | 1 conn: requests/s | p50 ms | p99 ms |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for target in direct drover nginx; do
		read -r mr m50 m99 <<< "${res[$target.many]}"
		read -r or o50 o99 <<< "${res[$target.one]}"
		echo "| $target | $mr | $m50 | $m99 | $or | $o50 | $o99 |"
	done
	echo
	read -r dr d50 _ <<< "${res[direct.many]}"
	read -r pr p50 _ <<< "${res[drover.many]}"
	read -r nr n50 _ <<< "${res[nginx.many]}"
	read -r _ d150 _ <<< "${res[direct.one]}"
	read -r _ p150 _ <<< "${res[drover.one]}"
	read -r _ n150 _ <<< "${res[nginx.one]}"
	awk -v pr="$pr" -v nr="$nr" -v d50="$d50" -v p50="$p50" -v n50="$n50" -v d150="$d150" -v p150="$p150" -v n150="$n150" 'BEGIN {
		printf "- throughput drover/nginx: %.2f (target >= 0.80)\n", pr / nr
		printf "- p50 added over direct, 1 connection: drover %.3f ms, nginx %.3f ms (target < 0.3 ms)\n", p150 - d150, n150 - d150
		printf "- p50 added over direct, %s connections: drover %.3f ms, nginx %.3f ms (queueing: p50 ~ connections / throughput)\n", "'"$conns"'", p50 - d50, n50 - d50
	}'
} | tee "$out"
