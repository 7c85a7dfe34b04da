#!/usr/bin/env bash
# Registry throughput of `drover server` against Debian's docker-registry (distribution
# 2.8), on one random file of SIZE MiB in a temp folder under /tmp, on the same machine:
#
#   sha256sum     `sha256sum FILE`, the floor for anything that must hash the blob
#   push          POST /v2/<repo>/blobs/uploads/, then PUT <location>?digest=... with
#                 the file as the body (curl -T): one blob, hashed and stored
#   pull          GET /v2/<repo>/blobs/<digest> to /dev/null
#   pull x16      16 such GETs at once: wall time until the last one ends, and the
#                 aggregate rate (16 x SIZE / wall time)
#
# Each measurement runs ROUNDS times and the table shows the median; rates are MB/s
# (10^6 bytes per second). Round i pushes variant i of the file (its first bytes
# changed) to repository bench/r<i>, so every push stores a blob new to the registry;
# the pulls fetch the last variant, just pushed (so from the page cache, as sha256sum
# reads the file). Every push must answer 201, every pull 200 with the full size.
# drover verifies the digest of every full GET; docker-registry does not.
# docker-registry runs with filesystem storage in the temp folder, no auth and its
# access log off; drover takes the admin token as Basic auth password.
#
# Usage: bench/registry.sh [SIZE_MIB] [ROUNDS]   (default 1024 and 3)
# Needs curl, sha256sum and docker-registry (apt-get install docker-registry); without
# docker-registry only drover is measured.
set -euo pipefail
size_mib=${1:-1024}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/registry-bench.XXXXXX)
server= dreg=
trap '[ -n "$server" ] && kill $server 2>/dev/null; [ -n "$dreg" ] && kill $dreg 2>/dev/null; rm -rf "$work"' EXIT
. "$root/bench/lib.sh"
start_server

file=$work/blob
head -c $((size_mib << 20)) /dev/urandom > "$file"
bytes=$(stat -c %s "$file")
# Variant i of the file starts with "drover-bench-round-<i>".
variant() { printf 'drover-bench-round-%08d' "$1" | dd of="$file" conv=notrunc status=none; }
digs=()
for i in $(seq "$rounds"); do
	variant "$i"
	digs[i]=sha256:$(sha256sum "$file" | cut -d' ' -f1)
done
dig=${digs[rounds]} # the file is now variant $rounds; pulls fetch it from bench/r$rounds

# docker-registry on a free loopback port.
dreg_url=
if command -v docker-registry > /dev/null; then
	port=$((20000 + RANDOM % 20000))
	while (echo > /dev/tcp/127.0.0.1/$port) 2> /dev/null; do port=$((port + 1)); done
	cat > "$work/docker-registry.yml" <<-EOF
		version: 0.1
		log: {level: error, accesslog: {disabled: true}}
		storage:
		  filesystem: {rootdirectory: $work/docker-registry}
		  delete: {enabled: true}
		http: {addr: 127.0.0.1:$port}
	EOF
	docker-registry serve "$work/docker-registry.yml" 2> "$work/docker-registry.log" &
	dreg=$!
	for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/v2/" > /dev/null && break; sleep 0.05; done
	dreg_url=http://127.0.0.1:$port
else
	echo "docker-registry not found: measuring drover only" >&2
fi

now() { date +%s%N; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# push URL CURL_AUTH... : POST then PUT variant $round of the file to bench/r$round;
# prints nanoseconds.
push() {
	local base=$1 repo=bench/r$round d=${digs[round]} loc t0
	shift
	variant "$round"
	t0=$(now)
	loc=$(curl -sf "$@" -X POST -D - -o /dev/null "$base/v2/$repo/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
	[[ $loc == /* ]] && loc=$base$loc
	[[ $loc == *\?* ]] && loc="$loc&digest=$d" || loc="$loc?digest=$d"
	code=$(curl -s "$@" -o /dev/null -w '%{http_code}' -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$file" "$loc")
	[ "$code" = 201 ] || { echo "push to $base answered $code" >&2; exit 1; }
	echo $(($(now) - t0))
}

# pull URL N CURL_AUTH... : N parallel GETs of the blob; prints the wall nanoseconds.
pull() {
	local base=$1 n=$2 t0 pids=() i
	shift 2
	t0=$(now)
	for i in $(seq "$n"); do
		curl -s "$@" -o /dev/null -w '%{http_code} %{size_download}\n' "$base/v2/bench/r$rounds/blobs/$dig" > "$work/pull.$i" &
		pids+=($!)
	done
	wait "${pids[@]}"
	local t=$(($(now) - t0))
	for i in $(seq "$n"); do
		[ "$(cat "$work/pull.$i")" = "200 $bytes" ] || { echo "pull from $base: $(cat "$work/pull.$i")" >&2; exit 1; }
	done
	echo $t
}

declare -A res
measure() { # KEY COMMAND...
	local key=$1 t=()
	shift
	for round in $(seq "$rounds"); do t+=($("$@")); done
	res[$key]=$(median "${t[@]}")
}
hashit() { local t0; t0=$(now); sha256sum "$file" > /dev/null; echo $(($(now) - t0)); }
round=0
drover_auth=(-u "bench:$token")

echo "file: $size_mib MiB, $rounds rounds, $(nproc) cores" >&2
measure sha hashit
measure push_drover push "$url" "${drover_auth[@]}"
measure pull_drover pull "$url" 1 "${drover_auth[@]}"
measure pull16_drover pull "$url" 16 "${drover_auth[@]}"
if [ -n "$dreg_url" ]; then
	measure push_dreg push "$dreg_url"
	measure pull_dreg pull "$dreg_url" 1
	measure pull16_dreg pull "$dreg_url" 16
fi

# A table row: NAME, then KEY COPIES per column (an unset KEY prints "-").
row() {
	local name=$1
	shift
	printf '| %-20s' "$name"
	while [ $# -gt 0 ]; do
		local ns=${res[$1]:-}
		if [ -z "$ns" ]; then
			printf ' | %8s | %8s' - -
		else
			awk -v ns="$ns" -v b="$bytes" -v c="$2" 'BEGIN { printf " | %8.2f | %8.0f", ns / 1e9, c * b / 1e6 / (ns / 1e9) }'
		fi
		shift 2
	done
	echo ' |'
}
echo
echo "$size_mib MiB blob, median of $rounds rounds, $(nproc) cores; s = seconds, MB/s = 10^6 bytes per second"
echo
echo "| measurement          | drover s |   MB/s   | d-reg s  |   MB/s   |"
echo "|----------------------|----------|----------|----------|----------|"
row "sha256sum" sha 1 none 1
row "push" push_drover 1 push_dreg 1
row "pull" pull_drover 1 pull_dreg 1
row "16 concurrent pulls" pull16_drover 16 pull16_dreg 16
