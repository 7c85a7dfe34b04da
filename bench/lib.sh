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
