#!/usr/bin/env bash
# Zero-downtime deploys, measured: a service (cmd/drover/testdata/websvc, 2 replicas,
# health /healthz every 200 ms) is deployed by `drover deploy` 20 times in a row,
# alternating two releases, blue-green, while wrk keeps 50 connections busy through the
# Drover proxy the whole time. Reports:
#   - requests served and failed (non-2xx, connect/read/write errors, timeouts) under load;
#   - time from `drover deploy` to traffic switched (median and max of the 20), as the
#     deploy's own log says ("switched ... after X");
#   - time to replace an instance killed with SIGKILL, until its replacement is healthy
#     and serving (polling the environment API every 20 ms), 5 kills.
# Prints a Markdown table and writes it to $OUT.
#
# Needs wrk and git (run as root on Debian and the script installs wrk).
# Usage: [DEPLOYS=20] [CONNS=50] [OUT=/tmp/deploy-bench.md] bench/deploy.sh
set -euo pipefail
deploys=${DEPLOYS:-20}
conns=${CONNS:-50}
out=${OUT:-/tmp/deploy-bench.md}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
. "$root/bench/lib.sh"

need_wrk

(cd "$root/cmd/drover" && go build -o "$work/websvc" ./testdata/websvc)
start_server
export DROVER_SERVER=$url DROVER_TOKEN=$token
host=web.bench.localhost

# Two releases of one service, built by two runs.
websvc_release v1 && wait_run 1
websvc_release v2 && wait_run 2
"$work/drover" deploy web:r1 --env bench > /dev/null

echo "deploying $deploys times under $conns connections" >&2
wrk -t2 -c"$conns" -d$((deploys * 3 + 10))s -H "Host: $host" "$proxy/" > "$work/wrk.txt" 2>&1 &
wrkpid=$!
sleep 2
switches=()
for i in $(seq "$deploys"); do
	rel=r$((i % 2 + 1))
	line=$("$work/drover" deploy "web:$rel" --env bench | grep 'switched web in bench')
	switches+=("$(sed -n 's/.* after \([0-9.]*m\{0,1\}s\)$/\1/p' <<< "$line")")
done
kill -INT "$wrkpid" 2>/dev/null || true
wait "$wrkpid" || true

# seconds: "412ms" -> 0.412, "1.2s" -> 1.2
secs() { case $1 in *ms) awk "BEGIN{print ${1%ms}/1000}" ;; *s) echo "${1%s}" ;; esac; }
sorted=$(for s in "${switches[@]}"; do secs "$s"; done | sort -g)
median=$(sed -n "$(((deploys + 1) / 2))p" <<< "$sorted")
maxsw=$(tail -1 <<< "$sorted")
requests=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$work/wrk.txt")
non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$work/wrk.txt")
sockerr=$(sed -n 's/.*Socket errors: \(.*\)/\1/p' "$work/wrk.txt")
rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$work/wrk.txt")

# Kill an instance, time until a replacement is healthy and serving.
env_json() { curl -fsS -H "Authorization: Bearer $token" "$url/api/v1/environments/bench"; }
heals=()
for _ in 1 2 3 4 5; do
	pid=$(env_json | sed -n 's/.*"pid": \([0-9]*\).*/\1/p' | head -1)
	t0=$(date +%s.%N)
	kill -9 "$pid"
	for _ in $(seq 1000); do
		j=$(env_json)
		n=$(grep -c '"health": "healthy"' <<< "$j" || true)
		if [ "$n" = 2 ] && ! grep -q "\"pid\": $pid," <<< "$j"; then break; fi
		sleep 0.02
	done
	heals+=("$(awk "BEGIN{print $(date +%s.%N) - $t0}")")
done
healmed=$(printf '%s\n' "${heals[@]}" | sort -g | sed -n 3p)
healmax=$(printf '%s\n' "${heals[@]}" | sort -g | tail -1)

{
	echo "| what | result | target |"
	echo "|---|---|---|"
	echo "| requests through the proxy during $deploys blue-green deploys ($conns connections) | $requests ($rps/s) | |"
	echo "| failed: non-2xx | ${non2xx:-0} | 0 |"
	echo "| failed: socket errors | ${sockerr:-none} | none |"
	echo "| deploy to traffic switched, median / max of $deploys | ${median}s / ${maxsw}s | < 1 s |"
	echo "| killed instance replaced and healthy, median / max of 5 (health interval 0.2 s) | ${healmed}s / ${healmax}s | < 2 s + interval |"
} | tee "$out"
