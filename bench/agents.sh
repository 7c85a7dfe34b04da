#!/usr/bin/env bash
# Dispatch to agents: RUNS one-step runs queued on a server with AGENTS `drover agent run`
# processes of capacity 1 (the server runs no step itself: --no-local-steps), beside the
# same runs executed by the server itself (its default workers, no agents), and once more
# with the server on the first CPU and the agents on the others (taskset), as if on
# machines of their own. Reports the
# dispatch latency, from a slot falling free to the next step's process starting (read
# from the agents' and the server's debug logs), p50 and p99, and the server's CPU time
# while the runs ran. The latency includes the agent's fresh checkout of the run's commit
# (a copy of the agent's pristine checkout of the commit after its first fetch), as the
# server's includes its own clone. "server_handoff" is the server's own part: from taking
# an agent's result, which frees its slot, to handing it the next step. Steps run unisolated on
# both sides (--step-uids off), as agents run them.
#
# Usage: bench/agents.sh [AGENTS] [RUNS]   (default 100 1000)
set -euo pipefail
agents=${1:-100}
runs=${2:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
echo "building drover..." >&2
(cd "$root" && go build -o "$work/drover" ./cmd/drover && go build -o "$work/agentdispatch" ./bench/agentdispatch)
ulimit -n 65536 2> /dev/null || true
run() { # NAME FLAGS...
	mkdir -p "$work/$1"
	echo "$1: $runs one-step runs..." >&2
	"$work/agentdispatch" -drover "$work/drover" -work "$work/$1" -agents "$agents" -runs "$runs" "${@:2}"
}
run server -mode server
run agents -mode agents
if [ "$(nproc)" -gt 1 ] && command -v taskset > /dev/null; then
	run split -mode agents -split
fi
