#!/usr/bin/env bash
# Push-to-start latency of `drover server`: from `git push` returning to the first step's
# process starting (it writes its start time, in ns, to a file). Runs ROUNDS pushes of
# new commits to one hosted project and prints the median and the spread.
#
# Usage: bench/push-to-start.sh [ROUNDS]   (default 20)
set -euo pipefail
rounds=${1:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
. "$root/bench/lib.sh"
start_server
push="${url/http:\/\//http://admin:$token@}/git/bench.git"

mkdir "$work/repo" && cd "$work/repo"
git init -q -b main
printf 'steps:\n  - {name: first, run: "date +%%s%%N > %s/started"}\n' "$work" > drover.yml
git add drover.yml
lat=()
for i in $(seq "$rounds"); do
	git -c user.name=b -c user.email=b@b commit -q --allow-empty -m "round $i"
	rm -f "$work/started"
	git push -q "$push" main
	returned=$(date +%s%N)
	for _ in $(seq 400); do [ -s "$work/started" ] && break; sleep 0.005; done
	started=$(cat "$work/started")
	lat+=($(( (started - returned) / 1000 )))
done
printf '%s\n' "${lat[@]}" | sort -n | awk '{a[NR]=$1} END {
	printf "push-to-start over %d pushes: median %.1f ms, min %.1f ms, max %.1f ms (negative: the step started before git push returned)\n",
		NR, a[int((NR+1)/2)]/1000, a[1]/1000, a[NR]/1000 }'
