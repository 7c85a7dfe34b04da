#!/usr/bin/env bash
# Masking's cost, through the real server: one pipeline whose steps each print the same
# ~100 MB of build-log lines, alternately with 20 secrets in the step's environment
# (every line then goes through the masker) and with none. Reports each kind's median
# step duration over ROUNDS runs and their ratio (target: masked at most 1.10x).
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

mkdir "$work/repo" && cd "$work/repo"
git init -q -b main
# 100-byte lines of what a build prints, the same for every step.
line='ok   github.com/example/shop/catalog/internal/store  0.412s  coverage: 81.2% of statements  [cached]'
{
	echo "steps:"
	for k in plain-1 masked-1 plain-2 masked-2; do
		echo "  - name: $k"
		case $k in masked-*) echo "    secrets: [$list]" ;; esac
		printf "    run: 'yes \"%s\" | head -c %d'\n" "$line" "$((mb * 1000 * 1000))"
	done
} > drover.yml
git add drover.yml && git -c user.name=b -c user.email=b@b commit -q -m loud
push="${url/http:\/\//http://admin:$token@}/git/loud.git"

plain=() masked=()
for i in $(seq "$rounds"); do
	[ "$i" -gt 1 ] && git -c user.name=b -c user.email=b@b commit -q --allow-empty -m "round $i"
	git push -q "$push" main
	for _ in $(seq 1200); do
		st=$(curl -s "${auth[@]}" "$url/api/v1/projects/loud/runs/$i" | python3 -c 'import json,sys
try: print(json.load(sys.stdin)["status"])
except Exception: print("pending")')
		[ "$st" = running ] || [ "$st" = pending ] || break; sleep 0.2
	done
	[ "$st" = success ] || { echo "run $i ended $st:" >&2; curl -s "${auth[@]}" "$url/api/v1/projects/loud/runs/$i" >&2; exit 1; }
	while read -r kind ms; do
		case $kind in plain) plain+=("$ms") ;; masked) masked+=("$ms") ;; esac
	done < <(curl -s "${auth[@]}" "$url/api/v1/projects/loud/runs/$i" | python3 -c 'import json,sys
for s in json.load(sys.stdin)["steps"]: print(s["name"].split("-")[0], s["duration_ms"])')
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {m=(NR+1)/2; if (NR%2) print a[m]; else print (a[m-0.5]+a[m+0.5])/2}'; }
p=$(med "${plain[@]}"); m=$(med "${masked[@]}")
awk -v p="$p" -v m="$m" -v mb="$mb" -v n="${#plain[@]}" 'BEGIN {
	printf "%d MB of output per step, median of %d steps each: no secrets %d ms, 20 secrets %d ms, ratio %.2f (target <= 1.10)\n", mb, n, p, m, m / p
}'
