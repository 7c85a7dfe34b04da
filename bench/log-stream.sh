#!/usr/bin/env bash
# A step printing ~100 MB of output: `drover run` against the server storing the log and
# a client following it live (GET .../log?follow=1), interleaved ROUNDS times. Reports the
# step's duration both ways (median) and their ratio (target: server at most 1.10x), and
# the same for the whole run: `drover run` as a process against the server's run, which
# also checks the commit out into a fresh workspace.
#
# Usage: bench/log-stream.sh [ROUNDS] [MB]   (defaults 3, 100)
set -euo pipefail
rounds=${1:-3}
mb=${2:-100}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
. "$root/bench/lib.sh"
start_server
cd "$root"
auth=(-H "Authorization: Bearer $token")

mkdir "$work/repo" && cd "$work/repo"
git init -q -b main
# 100-byte lines: a realistic build log, not one endless line.
printf 'steps:\n  - name: loud\n    run: yes "%s" | head -c %d\n' \
	"$(printf 'x%.0s' $(seq 99))" "$((mb * 1000 * 1000))" > drover.yml
git add drover.yml && git -c user.name=b -c user.email=b@b commit -q -m loud
push="${url/http:\/\//http://admin:$token@}/git/loud.git"

local_ms=() server_ms=() local_step=() server_step=()
for i in $(seq "$rounds"); do
	t0=$(date +%s%N); "$work/drover" run > /dev/null; t1=$(date +%s%N)
	local_step+=($(python3 -c 'import json,sys,datetime as d
s=json.load(open(sys.argv[1]))["steps"][0]
f=lambda t: d.datetime.fromisoformat(t.replace("Z","+00:00"))
print(int((f(s["finished"])-f(s["started"])).total_seconds()*1000))' ".drover/runs/$i/run.json"))
	local_ms+=($(( (t1 - t0) / 1000000 )))
	[ "$i" -gt 1 ] && git -c user.name=b -c user.email=b@b commit -q --allow-empty -m "round $i"
	git push -q "$push" main
	for _ in $(seq 200); do
		curl -sf "${auth[@]}" "$url/api/v1/projects/loud/runs/$i" > /dev/null && break; sleep 0.02
	done
	curl -s "${auth[@]}" "$url/api/v1/projects/loud/runs/$i/steps/loud/log?follow=1" -o "$work/followed.log"
	for _ in $(seq 600); do
		st=$(curl -s "${auth[@]}" "$url/api/v1/projects/loud/runs/$i" | sed -n 's/^  "status": "\(.*\)",/\1/p')
		[ "$st" = running ] || [ "$st" = pending ] || break; sleep 0.1
	done
	d=$(curl -s "${auth[@]}" "$url/api/v1/projects/loud/runs/$i" | grep -m1 '"duration_ms"' | tr -dc 0-9)
	server_step+=($(curl -s "${auth[@]}" "$url/api/v1/projects/loud/runs/$i" | grep '"duration_ms"' | sed -n 2p | tr -dc 0-9))
	server_ms+=($d)
	size=$(stat -c %s "$work/followed.log")
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
l=$(med "${local_ms[@]}"); s=$(med "${server_ms[@]}")
ls=$(med "${local_step[@]}"); ss=$(med "${server_step[@]}")
awk -v l="$l" -v s="$s" -v ls="$ls" -v ss="$ss" -v mb="$mb" -v size="$size" 'BEGIN {
	printf "%d MB step, medians: the step  drover run %d ms, server (followed live) %d ms, ratio %.2f (target <= 1.10)\n", mb, ls, ss, ss / ls
	printf "               the whole run  drover run %d ms, server (followed live) %d ms, ratio %.2f; follower got %.1f MB\n", l, s, s / l, size / 1e6
}'
