#!/usr/bin/env bash
# Container steps on the Docker Engine, timed, with the test image drover-test/busybox:1
# (Debian's static busybox FROM scratch, as docker/dockertest's BuildBusybox makes it;
# built first, from the layer cache when the engine has it):
#
# (1) per-step overhead of a container step: ROUNDS rounds, interleaved so that machine
#     noise hits all alike, of (a) a shell loop of N `docker run --rm IMAGE true`; (b)
#     `drover run` of a chain of N steps, each needing the one before, with `image: IMAGE`
#     and `run: "true"`; (c) the same chain without image: (process steps), the engine's
#     own cost. Medians of wall time; per step: a/N, b/N and the container's share
#     (b - c)/N; ratios (b - c)/a (target <= 1.2) and b/a.
# (2) build + push of a small Go service's image through `drover server` (default flags:
#     a build: step pushes to the server's own registry as PROJECT/image): a pipeline of
#     `compile` (go build of a static binary, a process step) then `image` (build: of a
#     Dockerfile FROM IMAGE that COPYs the binary), pushed with git three times: cold (no
#     earlier image of the service on the engine, an empty registry), warm (one line of
#     main.go changed: new binary, new COPY layer, cached base) and cached (only a comment
#     in drover.yml changed: the Dockerfile's own steps from the cache; the one LABEL step
#     Drover appends for the run's number, commit and time is new). The `image` step's duration
#     (build + push), from the run's JSON, and how many of its builder steps after FROM
#     came from the cache ("Using cache" in the step's log).
#     compile uses -trimpath -buildvcs=false: the server checks every run out in a folder
#     of its own, with .git, and go build would otherwise write that path and the commit
#     into the binary, so no run's COPY layer could come from the cache.
# Prints a Markdown table and writes it to $OUT.
#
# Usage: [N=20] [ROUNDS=3] [OUT=/tmp/docker-bench.md] bench/docker.sh
# Needs a Docker Engine, the docker CLI and /bin/busybox from busybox-static. Removes the
# engine's images of */bench-svc/image before and after, and prunes dangling images.
set -euo pipefail
n=${N:-20}
rounds=${ROUNDS:-3}
out=${OUT:-/tmp/docker-bench.md}
image=drover-test/busybox:1
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
server=""
# rm_svc_images: the engine's images of this benchmark's service, from any earlier server.
rm_svc_images() {
	local refs
	refs=$(docker image ls --format '{{.Repository}}:{{.Tag}}' | grep '/bench-svc/image:' || true)
	[ -z "$refs" ] || docker image rm -f $refs > /dev/null
	docker image prune -f > /dev/null
}
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm_svc_images 2>/dev/null || true; rm -rf "$work"' EXIT
. "$root/bench/lib.sh"

if [ ! -x /bin/busybox ] || ldd /bin/busybox > /dev/null 2>&1; then
	echo "needs Debian's static busybox at /bin/busybox: apt-get install busybox-static" >&2
	exit 1
fi
docker version > /dev/null || { echo "no Docker Engine answers" >&2; exit 1; }
mkdir "$work/bb" && cp /bin/busybox "$work/bb/busybox"
printf '%s\n' 'FROM scratch' 'COPY busybox /bin/busybox' 'RUN ["/bin/busybox", "--install", "-s", "/bin"]' \
	'RUN mkdir -p /tmp && chmod 1777 /tmp' > "$work/bb/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$work/bb" > /dev/null 2> "$work/bb.log" || { cat "$work/bb.log" >&2; exit 1; }

echo "building drover..." >&2
(cd "$root" && go build -o "$work/drover" ./cmd/drover)

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR+1)/2; if (NR%2) print a[m]; else print (a[m-0.5]+a[m+0.5])/2}'; }

# (1) per-step overhead
chain() { # DIR IMAGE-FIELD: a workspace with N steps, each needing the one before
	mkdir -p "$1"
	{
		echo "steps:"
		echo "  - {name: s1,$2 run: \"true\"}"
		for i in $(seq 2 "$n"); do echo "  - {name: s$i, needs: [s$((i - 1))],$2 run: \"true\"}"; done
	} > "$1/drover.yml"
}
chain "$work/ctr" " image: $image,"
chain "$work/proc" ""
drover_run() { rm -rf "$1/.drover"; "$work/drover" run -C "$1" > "$work/run.out" 2>&1 || { cat "$work/run.out" >&2; exit 1; }; }
docker run --rm "$image" true # warm-up, untimed
drover_run "$work/proc"
echo "$rounds rounds of $n steps..." >&2
as=() bs=() cs=()
for _ in $(seq "$rounds"); do
	t0=$(now_ms); for _ in $(seq "$n"); do docker run --rm "$image" true; done; t1=$(now_ms)
	as+=($((t1 - t0)))
	t0=$(now_ms); drover_run "$work/ctr"; t1=$(now_ms)
	bs+=($((t1 - t0)))
	t0=$(now_ms); drover_run "$work/proc"; t1=$(now_ms)
	cs+=($((t1 - t0)))
done
a=$(printf '%s\n' "${as[@]}" | median)
b=$(printf '%s\n' "${bs[@]}" | median)
c=$(printf '%s\n' "${cs[@]}" | median)

# (2) image build + push through the server
rm_svc_images
start_server
auth=${url/http:\/\//http://b:$token@}
api() { curl -fsS -H "Authorization: Bearer $token" "$url/api/v1/$1"; }
svc=$work/bench-svc
mkdir -p "$svc" && git -C "$svc" init -q -b main
cat > "$svc/main.go" <<'GO'
package main

import (
	"fmt"
	"net/http"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello 1") })
	http.ListenAndServe(":8080", nil)
}
GO
printf 'module bench-svc\n\ngo 1.22\n' > "$svc/go.mod"
printf '%s\n' "FROM $image" 'COPY app /app/bin' 'ENTRYPOINT ["/app/bin"]' > "$svc/Dockerfile"
cat > "$svc/drover.yml" <<'YML'
steps:
  - name: compile
    run: CGO_ENABLED=0 go build -trimpath -buildvcs=false -o app .
  - name: image
    needs: [compile]
    build: {context: ., dockerfile: Dockerfile}
YML
push() { # MESSAGE
	git -C "$svc" add . && git -C "$svc" -c user.name=b -c user.email=b@b commit -q -m "$1"
	git -C "$svc" push -q "$auth/git/bench-svc.git" main
}
wait_run() { # N -> the run's JSON in $work/run.N.json
	local st=""
	for _ in $(seq 1200); do
		api "projects/bench-svc/runs/$1" > "$work/run.$1.json" 2> /dev/null || { sleep 0.1; continue; }
		st=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' < "$work/run.$1.json")
		case $st in queued | running) sleep 0.1 ;; success) return ;; *) break ;; esac
	done
	echo "bench-svc run $1: ${st:-not found}" >&2
	cat "$work/run.$1.json" >&2
	api "projects/bench-svc/runs/$1/steps/image/log" >&2 || true
	exit 1
}
step_ms() { python3 -c 'import json,sys; print([s for s in json.load(sys.stdin)["steps"] if s["name"] == sys.argv[1]][0]["duration_ms"])' "$2" < "$work/run.$1.json"; }
cached() { # N -> "K of M": builder steps after FROM taken from the cache
	api "projects/bench-svc/runs/$1/steps/image/log" > "$work/image.$1.log"
	echo "$(grep -c 'Using cache' "$work/image.$1.log" || true) of $(($(sed -n 's|^Step 1/\([0-9]*\) :.*|\1|p' "$work/image.$1.log") - 1))"
}
echo "image build + push: cold, warm, cached..." >&2
push "service" && wait_run 1
sed -i 's/hello 1/hello 2/' "$svc/main.go"
push "hello 2" && wait_run 2
echo "# a comment" >> "$svc/drover.yml"
push "a comment" && wait_run 3

{
	echo "| what | result | target |"
	echo "|---|---|---|"
	awk -v n="$n" -v r="$rounds" -v a="$a" -v b="$b" -v c="$c" 'BEGIN {
		printf "| `docker run --rm busybox true`, per step (loop of %d, median of %d rounds) | %.1f ms | |\n", n, r, a / n
		printf "| drover container step, per step: `drover run` of %d chained steps / %d | %.1f ms | |\n", n, n, b / n
		printf "| drover process step, per step (same chain without image:) | %.1f ms | |\n", c / n
		printf "| drover container step net of the engine, (b - c) / %d | %.1f ms | |\n", n, (b - c) / n
		printf "| ratio (b - c) / docker run | %.2f | <= 1.2 %s |\n", (b - c) / a, ((b - c) / a <= 1.2 ? "met" : "missed")
		printf "| ratio b / docker run | %.2f | report |\n", b / a
	}'
	for i in 1 2 3; do
		what=$(sed -n "${i}p" <<< $'cold: no image of the service, empty registry\nwarm: one line of main.go changed\ncached: a comment in drover.yml changed')
		printf '| `image` step (build + push), %s | %s s (%s builder steps after FROM from cache; compile %s s) | report |\n' "$what" \
			"$(awk -v ms="$(step_ms "$i" image)" 'BEGIN {printf "%.2f", ms / 1000}')" "$(cached "$i")" \
			"$(awk -v ms="$(step_ms "$i" compile)" 'BEGIN {printf "%.2f", ms / 1000}')"
	done
} | tee "$out"
