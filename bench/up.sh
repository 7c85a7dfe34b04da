#!/usr/bin/env bash
# `drover up` on the example shop, timed: from start on a fresh data folder (Go build cache
# as it is: run once to warm it) until all three services are healthy in staging, with a
# breakdown by stage read from the runs' step timings; then the lead time of a one-line
# change: the first releases approved into production, then from `git push` of a changed
# stock count to the new count on production's front end, approving the release as soon as
# the run waits for it.
# Prints a Markdown table and writes it to $OUT.
#
# Usage: [OUT=/tmp/up-bench.md] bench/up.sh
set -euo pipefail
out=${OUT:-/tmp/up-bench.md}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

(cd "$root" && go build -o "$work/drover" ./cmd/drover)
t0=$(date +%s.%N)
"$work/drover" up "$root/examples/shop" --data "$work/data" --listen 127.0.0.1:0 --proxy-listen 127.0.0.1:0 > "$work/up.out" 2>&1 &
pid=$!
for _ in $(seq 1200); do grep -q '^The system is up' "$work/up.out" && break; sleep 0.1; done
t1=$(date +%s.%N)
grep -q '^The system is up' "$work/up.out" || { cat "$work/up.out" >&2; exit 1; }
url=$(sed -n 's/^drover server on \(http[^ ]*\).*/\1/p' "$work/up.out")
proxy=$(sed -n 's|^  web *http://web.staging.localhost:\([0-9]*\)/.*|\1|p' "$work/up.out")
token=$(cat "$work/data/admin-token")
export DROVER_SERVER=$url DROVER_TOKEN=$token
api() { curl -fsS -H "Authorization: Bearer $token" "$url/api/v1/$1"; }

# Seconds each step of the three services' first runs took, summed by step name.
stages=$(for p in catalog stock web; do api "projects/$p/runs/1"; done |
	python3 -c '
import json, sys, collections
dec, text, i, tot = json.JSONDecoder(), sys.stdin.read(), 0, collections.OrderedDict()
while i < len(text):
    text = text[i:].lstrip(); i = 0
    if not text: break
    run, i = dec.raw_decode(text)
    for s in run["steps"]:
        if s.get("duration_ms"): tot[s["name"]] = tot.get(s["name"], 0) + s["duration_ms"] / 1000
print(", ".join("%s %.1f s" % kv for kv in tot.items()))')

runstatus() { api "projects/$1/runs/$2" 2> /dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2> /dev/null || true; }
prod_page() { curl -s -H "Host: web.production.localhost" "http://127.0.0.1:$proxy/" 2> /dev/null; }

# The first releases go to production (approved), so there is a production to change.
for p in catalog stock web; do "$work/drover" approve "$p" 1 > /dev/null; done
for _ in $(seq 1200); do prod_page | grep -q '<td>120</td>' && break; sleep 0.1; done

# Lead time of a one-line change to production, approved at once.
git -C "$work" clone -q "${url/http:\/\//http://b:$token@}/git/stock.git" stock
sed -i 's/"tea": 120/"tea": 121/' "$work/stock/main.go"
git -C "$work/stock" -c user.name=b -c user.email=b@b commit -q -am "one more tea"
l0=$(date +%s.%N)
git -C "$work/stock" push -q origin main
for _ in $(seq 1200); do
	[ "$(runstatus stock 2)" = waiting ] && break
	sleep 0.1
done
"$work/drover" approve stock 2 > /dev/null
for _ in $(seq 1200); do
	prod_page | grep -q '<td>121</td>' && break
	sleep 0.1
done
l1=$(date +%s.%N)
prod_page | grep -q '<td>121</td>' || { echo "production never showed the change" >&2; exit 1; }

{
	echo "| what | result | target |"
	echo "|---|---|---|"
	echo "| \`drover up\` on a fresh data folder to all three services healthy in staging | $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s | < 60 s |"
	echo "| … by stage, summed over the three first runs | $stages | |"
	echo "| one-line change: \`git push\` to production's front end showing it, approved at once | $(awk "BEGIN{printf \"%.1f\", $l1 - $l0}") s | report |"
} | tee "$out"
