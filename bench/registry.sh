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
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user+system ticks of process $1

# push URL PID CURL_AUTH... : POST then PUT variant $round of the file to bench/r$round;
# prints the wall nanoseconds and the server's CPU ticks.
push() {
	local base=$1 pid=$2 repo=bench/r$round d=${digs[round]} loc t0 c0
	shift 2
	variant "$round"
	t0=$(now) c0=$(cpu "$pid")
	loc=$(curl -sf "$@" -X POST -D - -o /dev/null "$base/v2/$repo/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
	[[ $loc == /* ]] && loc=$base$loc
	[[ $loc == *\?* ]] && loc="$loc&digest=$d" || loc="$loc?digest=$d"
	code=$(curl -s "$@" -o /dev/null -w '%{http_code}' -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$file" "$loc")
	[ "$code" = 201 ] || { echo "push to $base answered $code" >&2; exit 1; }
	echo $(($(now) - t0)) $(($(cpu "$pid") - c0))
}

# pull URL PID N CURL_AUTH... : N parallel GETs of the blob; prints the wall
# nanoseconds and the server's CPU ticks.
pull() {
	local base=$1 pid=$2 n=$3 t0 c0 pids=() i
	shift 3
	t0=$(now) c0=$(cpu "$pid")
	for i in $(seq "$n"); do
		curl -s "$@" -o /dev/null -w '%{http_code} %{size_download}\n' "$base/v2/bench/r$rounds/blobs/$dig" > "$work/pull.$i" &
		pids+=($!)
	done
	wait "${pids[@]}"
	local t=$(($(now) - t0)) c=$(($(cpu "$pid") - c0))
	for i in $(seq "$n"); do
		[ "$(cat "$work/pull.$i")" = "200 $bytes" ] || { echo "pull from $base: $(cat "$work/pull.$i")" >&2; exit 1; }
	done
	echo $t $c
}

hashit() { local t0; t0=$(now); sha256sum "$file" > /dev/null; echo $(($(now) - t0)) 0; }
drover_auth=(-u "bench:$token")

# measure NAME COMMAND [ARGS...] : runs `COMMAND URL PID ARGS... [AUTH...]` ROUNDS times
# against drover and, interleaved, against docker-registry, so that both see the same
# machine load; keeps the medians of wall time and server CPU in res[NAME.WHO] and
# res[NAME.WHO.cpu] (WHO: drover, dreg).
declare -A res
measure() {
	local name=$1 out
	shift
	local -A ts=() cs=()
	for round in $(seq "$rounds"); do
		out=$("$1" "$url" "$server" "${@:2}" "${drover_auth[@]}")
		ts[drover]+=" ${out% *}" cs[drover]+=" ${out#* }"
		if [ -n "$dreg_url" ]; then
			out=$("$1" "$dreg_url" "$dreg" "${@:2}")
			ts[dreg]+=" ${out% *}" cs[dreg]+=" ${out#* }"
		fi
	done
	for who in "${!ts[@]}"; do
		res[$name.$who]=$(median ${ts[$who]})
		res[$name.$who.cpu]=$(median ${cs[$who]})
	done
}

echo "file: $size_mib MiB, $rounds rounds, $(nproc) cores" >&2
t=()
for round in $(seq "$rounds"); do t+=($(hashit | cut -d' ' -f1)); done
res[sha.drover]=$(median "${t[@]}")
measure push push
measure pull pull 1
measure pull16 pull 16

# A table row: NAME KEY COPIES.
row() {
	printf '| %-20s' "$1"
	for who in drover dreg; do
		local ns=${res[$2.$who]:-} c=${res[$2.$who.cpu]:-}
		if [ -z "$ns" ]; then
			printf ' | %8s | %8s | %8s' - - -
			continue
		fi
		awk -v ns="$ns" -v b="$bytes" -v n="$3" -v c="$c" -v tck="$tck" 'BEGIN {
			printf " | %8.2f | %8.0f | %8s", ns / 1e9, n * b / 1e6 / (ns / 1e9), c == "" ? "-" : sprintf("%.2f", c / tck) }'
	done
	echo ' |'
}
echo
echo "$size_mib MiB blob, median of $rounds rounds, $(nproc) cores, drover and docker-registry rounds interleaved."
echo "s: wall seconds; MB/s: 10^6 bytes per second (16 x size for 16 pulls); CPU s: the server process's user+system time"
echo
echo "| measurement          | drover s |   MB/s   |  CPU s   | d-reg s  |   MB/s   |  CPU s   |"
echo "|----------------------|----------|----------|----------|----------|----------|----------|"
row "sha256sum" sha 1
row "push" push 1
row "pull" pull 1
row "16 concurrent pulls" pull16 16
