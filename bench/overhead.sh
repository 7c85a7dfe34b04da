#!/usr/bin/env bash
# Engine overhead of `drover run` against the cost of starting the processes themselves.
#
# Baseline: a shell loop that starts `sh -c 'echo hi'` N times. Drover: `drover run` of a
# pipeline of N sequential `echo hi` steps (each step is a `sh -e -c` process). Both are
# run ROUNDS times, interleaved so that machine noise hits both alike; medians are
# reported with their ratio and the target (drover <= 1.2 x baseline + 15 ms).
# Also: 20 parallel `sleep 1` steps with --parallel 20 (ideal: 1 s).
#
# Usage: bench/overhead.sh [ROUNDS]   (default 15)
set -euo pipefail
rounds=${1:-15}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "building drover..." >&2
(cd "$root" && go build -o "$work/drover" ./cmd/drover)
drover="$work/drover"

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR+1)/2; if (NR%2) print a[m]; else print (a[m-0.5]+a[m+0.5])/2}'; }

pipeline() { # N -> a workspace with N sequential echo steps
	local n=$1 dir="$work/seq$1"
	mkdir -p "$dir"
	{ echo "steps:"; for i in $(seq "$n"); do echo "  - {name: s$i, run: echo hi}"; done; } > "$dir/drover.yml"
	echo "$dir"
}

for n in 20 100; do
	dir=$(pipeline "$n")
	base=() drov=()
	for _ in $(seq "$rounds"); do
		t0=$(now_ms); for _ in $(seq "$n"); do sh -c 'echo hi' > /dev/null; done; t1=$(now_ms)
		base+=($((t1 - t0)))
		rm -rf "$dir/.drover"
		t0=$(now_ms); "$drover" run -C "$dir" > /dev/null; t1=$(now_ms)
		drov+=($((t1 - t0)))
	done
	b=$(printf '%s\n' "${base[@]}" | median)
	d=$(printf '%s\n' "${drov[@]}" | median)
	awk -v n="$n" -v b="$b" -v d="$d" 'BEGIN {
		limit = 1.2 * b + 15
		printf "%3d sequential steps: baseline %6.1f ms  drover run %6.1f ms  ratio %.2f  target <= %.1f ms  %s\n",
			n, b, d, d / b, limit, (d <= limit ? "MET" : "MISSED")
	}'
done

dir="$work/par"; mkdir -p "$dir"
{ echo "steps:"; for i in $(seq 20); do echo "  - {name: p$i, needs: [], run: sleep 1}"; done; } > "$dir/drover.yml"
par=()
for _ in $(seq 3); do
	rm -rf "$dir/.drover"
	t0=$(now_ms); "$drover" run -C "$dir" --parallel 20 > /dev/null; t1=$(now_ms)
	par+=($((t1 - t0)))
done
printf ' 20 parallel sleep 1:  drover run --parallel 20 %s ms (median of 3; ideal 1000 ms)\n' "$(printf '%s\n' "${par[@]}" | median)"
