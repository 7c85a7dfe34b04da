#!/usr/bin/env bash
# Masking's cost, through the real server: a step printing ~100 MB of build-log lines
# with 20 secrets in its environment (every line then goes through the masker) against
# the same step with none, in runs pushed alternately. Reports each kind's median step
# duration over ROUNDS runs and their ratio (target: masked at most 1.10x).
#
# Usage: bench/secrets.sh [ROUNDS] [MB]   (defaults 3, 100)
set -euo pipefail
rounds=${1:-3}
mb=${2:-100}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
. "$root/bench/lib.sh"
start_server --step-uids off
cd "$root"
auth=(-H "Authorization: Bearer $token")

names=()
for i in $(seq 20); do
	name=$(printf 'BENCH_SECRET_%02d' "$i")
	names+=("$name")
	head -c 18 /dev/urandom | base64 | "$work/drover" secret set "$name" --server "$url" --token "$token" > /dev/null
done
list=$(IFS=,; echo "${names[*]}" | sed 's/,/, /g')

# Two projects, one step each: a run masks every value it handed out in all its later
# steps' output, so the kinds go in runs of their own, pushed alternately.
# 100-byte lines of what a build prints, the same for both.
line='ok   github.com/example/shop/catalog/internal/store  0.412s  coverage: 81.2% of statements  [cached]'
for kind in plain masked; do
	mkdir "$work/$kind" && cd "$work/$kind"
	git init -q -b main
	{
		echo "steps:"
		echo "  - name: print"
		[ "$kind" = masked ] && echo "    secrets: [$list]"
		printf "    run: 'yes \"%s\" | head -c %d'\n" "$line" "$((mb * 1000 * 1000))"
	} > drover.yml
	git add drover.yml && git -c user.name=b -c user.email=b@b commit -q -m loud
done

# wait_run PROJECT N prints the step's duration in ms once run N has passed.
wait_run() {
	for _ in $(seq 1200); do
		st=$(curl -s "${auth[@]}" "$url/api/v1/projects/$1/runs/$2" | python3 -c 'import json,sys
try: print(json.load(sys.stdin)["status"])
except Exception: print("pending")')
		[ "$st" = running ] || [ "$st" = pending ] || break; sleep 0.2
	done
	[ "$st" = success ] || { echo "$1 run $2 ended $st:" >&2; curl -s "${auth[@]}" "$url/api/v1/projects/$1/runs/$2" >&2; exit 1; }
	curl -s "${auth[@]}" "$url/api/v1/projects/$1/runs/$2" | python3 -c 'import json,sys
print(json.load(sys.stdin)["steps"][0]["duration_ms"])'
}

plain=() masked=()
for i in $(seq "$rounds"); do
	# Each kind goes first in every other round: a run's 100 MB log is still being
	# written back to disk while the next run goes.
	order="plain masked"
	[ $((i % 2)) = 0 ] && order="masked plain"
	for kind in $order; do
		cd "$work/$kind"
		[ "$i" -gt 1 ] && git -c user.name=b -c user.email=b@b commit -q --allow-empty -m "round $i"
		git push -q "${url/http:\/\//http://admin:$token@}/git/$kind.git" main
		ms=$(wait_run "$kind" "$i")
		case $kind in plain) plain+=("$ms") ;; masked) masked+=("$ms") ;; esac
	done
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {m=(NR+1)/2; if (NR%2) print a[m]; else print (a[m-0.5]+a[m+0.5])/2}'; }
p=$(med "${plain[@]}"); m=$(med "${masked[@]}")
awk -v p="$p" -v m="$m" -v mb="$mb" -v n="${#plain[@]}" 'BEGIN {
	printf "%d MB of output per step, median of %d runs each: no secrets %d ms, 20 secrets %d ms, ratio %.2f (target <= 1.10)\n", mb, n, p, m, m / p
}'
