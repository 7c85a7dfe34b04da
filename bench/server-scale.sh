#!/usr/bin/env bash
# Server with many stored runs: latency of the run list (API and web page) and the
# memory of an idle server. Seeds RUNS finished runs (3 steps each) into a fresh SQLite
# data folder, starts `drover server`, times 30 requests of each kind (median, p90), and
# reads VmRSS from /proc after the requests and a pause.
#
# Usage: bench/server-scale.sh [RUNS]   (default 10000)
set -euo pipefail
runs=${1:-10000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
cd "$root"
go build -o "$work/seedruns" ./bench/seedruns
echo "seeding $runs runs..." >&2
"$work/seedruns" -data "$work/data" -runs "$runs"
. "$root/bench/lib.sh"
start_server

measure() { # NAME PATH
	local t=()
	for _ in $(seq 30); do
		t+=($(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $token" "$url$2"))
	done
	printf '%s\n' "${t[@]}" | sort -n | awk -v name="$1" '{a[NR]=$1*1000} END {
		printf "%-34s median %6.2f ms  p90 %6.2f ms\n", name, a[int((NR+1)/2)], a[int(NR*0.9)] }'
}
measure "API GET /projects/bench/runs" /api/v1/projects/bench/runs
measure "API GET .../runs?before=5000" "/api/v1/projects/bench/runs?before=5000"
measure "page /p/bench" /p/bench
measure "API GET .../runs/$runs (one run)" "/api/v1/projects/bench/runs/$runs"
sleep 2
rss=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
printf 'idle server RSS with %d runs: %.1f MB\n' "$runs" "$(echo "$rss / 1024" | bc -l)"
