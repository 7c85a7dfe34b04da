#!/usr/bin/env bash
# The README's first command on a cold machine, timed: `go build` of drover with an empty
# Go build cache and module cache (modules come from the Go module proxy), then
# `drover up` of the example shop on a fresh data folder until it prints "The system is
# up" (all three services healthy in staging; each pipeline's steps compile Go's standard
# library in a cold cache of their own). Prints the build, the up and the total, in
# seconds. Run it on a quiet machine: it measures the machine as much as drover.
#
# Usage: bench/cold-start.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pid=""
cleanup() {
	[ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	chmod -R u+w "$work" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
export GOCACHE=$work/gocache GOMODCACHE=$work/gomodcache
t0=$(date +%s.%N)
(cd "$root" && go build -o "$work/drover" ./cmd/drover)
t1=$(date +%s.%N)
"$work/drover" up "$root/examples/shop" --data "$work/data" --listen 127.0.0.1:0 --proxy-listen 127.0.0.1:0 > "$work/up.out" 2>&1 &
pid=$!
for _ in $(seq 6000); do grep -q '^The system is up' "$work/up.out" && break; sleep 0.1; done
t2=$(date +%s.%N)
grep -q '^The system is up' "$work/up.out" || { cat "$work/up.out" >&2; exit 1; }
# The first line drover up printed, and when: progress from the binary's first second.
awk -v b="$t1" -v u="$t2" -v t="$t0" 'BEGIN {
	printf "| go build (cold caches) | drover up until the system is up | total |\n|---|---|---|\n"
	printf "| %.1f s | %.1f s | %.1f s |\n", b - t, u - b, u - t }'
