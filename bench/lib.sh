# Shared by the server benchmarks: source it after setting $work (a temp folder) and
# $root (the repository). start_server builds drover and starts `drover server` on a free
# loopback port with its data in $work/data, passing its arguments on; it sets $server
# (pid), $url, $proxy (the deploy proxy's URL) and $token.
# The caller's EXIT trap should kill $server.

start_server() {
	(cd "$root" && go build -o "$work/drover" ./cmd/drover)
	"$work/drover" server --data "$work/data" --listen 127.0.0.1:0 --proxy-listen 127.0.0.1:0 "$@" 2> "$work/server.log" &
	server=$!
	for _ in $(seq 200); do grep -q 'drover server listening' "$work/server.log" && break; sleep 0.05; done
	url=$(sed -n 's/.*drover server listening" url=\(http[^ ]*\).*/\1/p' "$work/server.log")
	proxy=$(sed -n 's/.*drover server listening" .* proxy=\(http[^ ]*\).*/\1/p' "$work/server.log")
	if [ -z "$url" ]; then
		echo "the server did not start:" >&2
		cat "$work/server.log" >&2
		exit 1
	fi
	token=$(cat "$work/data/admin-token")
}

# websvc_release VERSION [REPLICAS]: commit and push, to project web of the server, a
# pipeline that releases cmd/drover/testdata/websvc (built to $work/websvc) answering
# VERSION, with REPLICAS instances (default 2), health /healthz every 200 ms. The
# repository is $work/web.
websvc_release() {
	local repo=$work/web
	[ -d "$repo/.git" ] || { mkdir -p "$repo" && git -C "$repo" init -q -b main; }
	cat > "$repo/drover.yml" <<YML
service:
  name: web
  command: ./dist/websvc
  health: {path: /healthz, interval: 200ms}
  replicas: ${2:-2}
steps:
  - name: build
    run: mkdir -p dist && cp $work/websvc dist/websvc && echo $1 > dist/version
    artifacts: [dist]
YML
	git -C "$repo" add . && git -C "$repo" -c user.name=b -c user.email=b@b commit -q -m "$1"
	git -C "$repo" push -q "${url/http:\/\//http://b:$token@}/git/web.git" main
}

# wait_run N: wait until run N of web passed; exit the script if it did not.
wait_run() {
	for _ in $(seq 600); do
		st=$(curl -fsS -H "Authorization: Bearer $token" "$url/api/v1/projects/web/runs/$1" | sed -n 's/^  "status": "\([a-z]*\)".*/\1/p')
		case $st in success) return ;; failure | error | cancelled) echo "run $1: $st" >&2; exit 1 ;; esac
		sleep 0.1
	done
	echo "run $1 did not finish" >&2
	exit 1
}

# need_wrk installs wrk where it can (root on Debian) or says how, and exits.
need_wrk() {
	command -v wrk > /dev/null && return
	if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk > /dev/null
	else
		echo "need wrk: sudo apt-get install -y wrk" >&2
		exit 1
	fi
}
