package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/drover-cd/drover/atomicfile"
	"github.com/drover-cd/drover/proxy"
)

// StateFile is the name of the file in a Follower's State folder that holds the last
// route table it applied.
const StateFile = "routes.json"

// minPoll is the least time between two follow requests that got the same table.
const minPoll = time.Second

// ErrRefused is what Run returns when the server refuses the token and the proxy has
// no table to serve: nothing to do until someone passes a token that may read routes.
var ErrRefused = errors.New("the server refused the token")

// Follower keeps a proxy.Proxy serving the route table of a server: it long-polls the
// server for each new table, applies it, keeps it on disk, and while the server cannot
// be reached goes on serving the last table it had.
type Follower struct {
	// Server is the server's base URL, such as http://127.0.0.1:8080. Required.
	Server string
	// Token is a proxy machine token (drover token create --machine proxy). Required.
	Token string
	// Name names this proxy to the server, which waits for each proxy to serve a deploy's
	// switch. Proxies following one server need distinct names. Required.
	Name string
	// State is the folder the last table is kept in (StateFile), written atomically;
	// "" keeps nothing on disk.
	State string
	// Proxy is what the tables are applied to. Required.
	Proxy *proxy.Proxy
	// Client sends the follow requests; nil uses one whose timeout outlasts a long poll.
	Client *http.Client
	// Log gets when the server goes away and comes back, and each table applied; nil
	// discards.
	Log *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between attempts while the server cannot
	// be reached: it doubles from MinBackoff up to MaxBackoff. Defaults 100ms and 2s.
	MinBackoff, MaxBackoff time.Duration
	// Discovery, when set, listens on each route's discovery address as tables come.
	Discovery *Discovery

	table Table // the table applied last; only Load and Run's goroutine touch it
}

// Load applies the table kept in State, if there is one, and returns it: a proxy started
// while the server is down serves at once. Without a kept table it returns an error
// wrapping fs.ErrNotExist. Call it before Run, not during.
func (f *Follower) Load() (Table, error) {
	if f.State == "" {
		return Table{}, fmt.Errorf("no state folder: %w", os.ErrNotExist)
	}
	path := filepath.Join(f.State, StateFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return Table{}, fmt.Errorf("load the route table: %w", err)
	}
	var t Table
	if err := json.Unmarshal(data, &t); err != nil {
		return Table{}, fmt.Errorf("load the route table %s: %w", path, err)
	}
	f.apply(t)
	return t, nil
}

// Run follows the server until ctx ends, then returns nil. It returns an error wrapping
// ErrRefused when the server refuses the token before the proxy had any table to serve;
// a proxy that serves a table goes on serving it whatever the server answers.
func (f *Follower) Run(ctx context.Context) error {
	log := f.log()
	var (
		backoff  time.Duration
		downErr  error // why the server could not be reached, while it cannot
		downFrom time.Time
	)
	for ctx.Err() == nil {
		asked := time.Now()
		t, err := f.poll(ctx)
		if err == nil {
			if downErr != nil {
				log.Info("server is back: following it again", "server", f.Server, "after", time.Since(downFrom).Round(time.Millisecond))
				downErr = nil
			}
			backoff = 0
			if t.Version != f.table.Version || !sameRoutes(t.Routes, f.table.Routes) {
				f.apply(t)
				f.keep(t)
				log.Info("serving route table", "version", t.Version, "routes", len(t.Routes))
			} else if time.Since(asked) < minPoll {
				// The same table at once: a server that does not long-poll (one from
				// before versions). Ask again later rather than in a tight loop.
				select {
				case <-ctx.Done():
				case <-time.After(minPoll):
				}
			}
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, ErrRefused) && f.table.Version == "" && f.table.Routes == nil {
			return err
		}
		if downErr == nil {
			downFrom = time.Now()
			msg := "server unreachable: serving the last route table until it is back"
			if errors.Is(err, ErrRefused) {
				msg = "server refuses the token: serving the last route table"
			}
			log.Warn(msg, "server", f.Server, "version", f.table.Version, "routes", len(f.table.Routes), "err", err)
		}
		downErr = err
		backoff = f.next(backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
	return nil
}

// poll sends one follow request: the table the server has when it differs from the one
// applied, else the same table after the server's long poll.
func (f *Follower) poll(ctx context.Context) (Table, error) {
	q := url.Values{"proxy": {f.Name}}
	if f.table.Version != "" {
		q.Set("wait", f.table.Version) // also the ack: this proxy serves it
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(f.Server, "/")+"/api/v1/routes?"+q.Encode(), nil)
	if err != nil {
		return Table{}, fmt.Errorf("follow %s: %w", f.Server, err)
	}
	req.Header.Set("Authorization", "Bearer "+f.Token)
	resp, err := f.client().Do(req)
	if err != nil {
		return Table{}, fmt.Errorf("follow %s: %w", f.Server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return Table{}, fmt.Errorf("follow %s: %w", f.Server, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return Table{}, fmt.Errorf("follow %s: %s: %s: %w", f.Server, resp.Status, strings.TrimSpace(string(data)), ErrRefused)
	case resp.StatusCode != http.StatusOK:
		return Table{}, fmt.Errorf("follow %s: %s: %s", f.Server, resp.Status, strings.TrimSpace(string(data)))
	}
	var t Table
	if err := json.Unmarshal(data, &t); err != nil {
		return Table{}, fmt.Errorf("follow %s: the route table: %w", f.Server, err)
	}
	if t.Routes == nil {
		t.Routes = []Route{}
	}
	return t, nil
}

// apply makes the proxy serve t: every route t holds, and no route the table applied
// before held and t does not. Unchanged routes are left alone.
func (f *Follower) apply(t Table) {
	old := map[string]Route{}
	for _, r := range f.table.Routes {
		old[strings.ToLower(r.Host)] = r
	}
	for _, r := range t.Routes {
		key := strings.ToLower(r.Host)
		if prev, ok := old[key]; !ok || !slices.Equal(prev.Instances, r.Instances) {
			backends := make([]proxy.Backend, 0, len(r.Instances))
			for _, in := range r.Instances {
				backends = append(backends, proxy.Backend{ID: in.ID, Addr: in.Addr})
			}
			f.Proxy.Set(key, backends)
		}
		delete(old, key)
	}
	for key := range old {
		f.Proxy.Set(key, nil)
	}
	f.table = t
	if f.Discovery != nil {
		f.Discovery.Apply(t)
	}
}

// keep writes t to the state folder, atomically: a proxy killed mid-write starts again
// from the old table or the new one, never from half of one.
func (f *Follower) keep(t Table) {
	if f.State == "" {
		return
	}
	data, err := json.MarshalIndent(t, "", "  ")
	if err == nil {
		if err = os.MkdirAll(f.State, 0o700); err == nil {
			err = atomicfile.Write(filepath.Join(f.State, StateFile), append(data, '\n'), 0o600)
		}
	}
	if err != nil {
		// Serving goes on; only a restart while the server is down would miss it.
		f.log().Error("could not keep the route table on disk", "state", f.State, "err", err)
	}
}

// sameRoutes reports whether a and b route every host to the same instances.
func sameRoutes(a, b []Route) bool {
	return slices.EqualFunc(a, b, func(x, y Route) bool {
		return x.Host == y.Host && x.Discovery == y.Discovery && slices.Equal(x.Instances, y.Instances)
	})
}

func (f *Follower) next(backoff time.Duration) time.Duration {
	lo, hi := f.MinBackoff, f.MaxBackoff
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi <= 0 {
		hi = 2 * time.Second
	}
	if backoff < lo {
		return lo
	}
	return min(2*backoff, hi)
}

func (f *Follower) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return &http.Client{Timeout: PollTimeout + 15*time.Second}
}

func (f *Follower) log() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.New(slog.DiscardHandler)
}
