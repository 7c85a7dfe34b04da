#!/usr/bin/env bash
# The release flow, timed: (1) an ephemeral environment of three services (two from
# staging plus the run's own release, one instance each, health every 100 ms): time until
# all are healthy, from the step's own log ("is up in"), and time to tear it down, from
# the server log ("torn down ... took"), over ROUNDS runs; (2) commit to integration: from
# `git push` of a one-step service pipeline until the new release answers through the
# proxy in `integration`, which tracks main, over ROUNDS pushes. Medians and maxima.
# Prints a Markdown table and writes it to $OUT.
#
# Usage: [ROUNDS=5] [OUT=/tmp/release-flow-bench.md] bench/release-flow.sh
set -euo pipefail
rounds=${ROUNDS:-5}
out=${OUT:-/tmp/release-flow-bench.md}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
. "$root/bench/lib.sh"

(cd "$root/cmd/drover" && go build -o "$work/websvc" ./testdata/websvc)
start_server
export DROVER_SERVER=$url DROVER_TOKEN=$token
auth=${url/http:\/\//http://b:$token@}

# repo NAME YAML: a repository with drover.yml, pushed to project NAME.
repo() {
	mkdir -p "$work/$1" && git -C "$work/$1" init -q -b main
	printf '%s\n' "$2" > "$work/$1/drover.yml"
	commit "$1"
}
commit() {
	date +%s%N > "$work/$1/round" # every push a new commit
	git -C "$work/$1" add . && git -C "$work/$1" -c user.name=b -c user.email=b@b commit -q -m "${2:-change}"
	git -C "$work/$1" push -q "$auth/git/$1.git" main
}
wait_run() { # PROJECT N
	for _ in $(seq 600); do
		st=$(curl -fsS -H "Authorization: Bearer $token" "$url/api/v1/projects/$1/runs/$2" | sed -n 's/^  "status": "\([a-z]*\)".*/\1/p')
		case $st in success) return ;; failure | error | cancelled) echo "$1 run $2: $st" >&2; exit 1 ;; esac
		sleep 0.05
	done
	echo "$1 run $2 did not finish" >&2
	exit 1
}
service() { # NAME VERSION EXTRA-STEPS
	cat <<YML
service:
  name: $1
  command: ./dist/websvc
  health: {path: /healthz, interval: 100ms}
steps:
  - name: build
    run: mkdir -p dist && cp $work/websvc dist/websvc && echo $2 > dist/version
    artifacts: [dist]
$3
YML
}
repo alpha "$(service alpha a1 '  - {name: staging, deploy: staging}')" && wait_run alpha 1
repo beta "$(service beta b1 '  - {name: staging, deploy: staging}')" && wait_run beta 1

# (1) ephemeral environments
repo gamma "$(service gamma g1 '  - {name: e2e, environment: ephemeral, run: "test -n \"$ALPHA_URL$BETA_URL$GAMMA_URL\""}')"
wait_run gamma 1
for n in $(seq 2 "$rounds"); do
	commit gamma && wait_run gamma "$n"
done
ups=$(for n in $(seq "$rounds"); do
	curl -fsS -H "Authorization: Bearer $token" "$url/api/v1/projects/gamma/runs/$n/steps/e2e/log" |
		sed -n 's/.*is up in \([0-9.]*\)\(m\{0,1\}s\).*/\1 \2/p' | awk '{ print ($2 == "ms") ? $1 / 1000 : $1 }'
done | sort -g)
downs=$(sed -n 's/.*ephemeral environment torn down.* took=\([0-9.]*\)\(m\{0,1\}s\).*/\1 \2/p' "$work/server.log" |
	awk '{ print ($2 == "ms") ? $1 / 1000 : $1 }' | sort -g)

# (2) commit to integration
printf 'environments:\n  integration: { track: main }\n' > "$work/environments.yml"
"$work/drover" env apply "$work/environments.yml" > /dev/null
repo delta "$(service delta d0 '')" && wait_run delta 1
times=()
for n in $(seq "$rounds"); do
	sed -i "s/echo d[0-9]* >/echo d$n >/" "$work/delta/drover.yml"
	t0=$(date +%s.%N)
	commit delta
	for _ in $(seq 2000); do
		body=$(curl -s -H "Host: delta.integration.localhost" "$proxy/" || true)
		[ "$body" = "d$n integration" ] && break
		sleep 0.01
	done
	times+=("$(awk "BEGIN{print $(date +%s.%N) - $t0}")")
done
sorted=$(printf '%s\n' "${times[@]}" | sort -g)

median() { sed -n "$((($(wc -l <<< "$1") + 1) / 2))p" <<< "$1"; }
{
	echo "| what | median | max | target |"
	echo "|---|---|---|---|"
	echo "| ephemeral environment of 3 services up and healthy ($rounds runs) | $(median "$ups") s | $(tail -1 <<< "$ups") s | < 2 s |"
	echo "| ephemeral environment torn down after its step | $(median "$downs") s | $(tail -1 <<< "$downs") s | < 1 s |"
	echo "| git push to the new release answering in integration ($rounds pushes) | $(median "$sorted") s | $(tail -1 <<< "$sorted") s | < 5 s |"
} | tee "$out"
