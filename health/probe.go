package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// httpProbe returns a probe that GETs http://addr+path and passes on 2xx and 3xx.
func httpProbe(addr, path string, timeout time.Duration) func(context.Context) error {
	client := &http.Client{
		Transport: &http.Transport{
			Proxy: nil, // never through HTTP_PROXY: the instance is local
			// A new connection per probe: a probe tests that the instance still accepts,
			// not that an old connection still works.
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	target := "http://" + addr + path
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return fmt.Errorf("GET %s: %w", path, err)
		}
		req.Header.Set("User-Agent", "drover-health")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", path, probeError(ctx, err, timeout))
		}
		// Read the answer, bounded: a probe passes only once the instance has answered.
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 399 {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		if err != nil {
			return fmt.Errorf("GET %s: read the answer: %w", path, probeError(ctx, err, timeout))
		}
		return nil
	}
}

// tcpProbe returns a probe that passes when addr accepts a TCP connection.
func tcpProbe(addr string, timeout time.Duration) func(context.Context) error {
	var d net.Dialer
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", addr, probeError(ctx, err, timeout))
		}
		return conn.Close()
	}
}

// errNoAnswer is a probe that hit its timeout.
var errNoAnswer = errors.New("no answer")

// probeError says a probe timed out when it did, and drops the URL that net/http repeats.
func probeError(ctx context.Context, err error, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w within %s", errNoAnswer, timeout)
	}
	if uerr, ok := errors.AsType[*url.Error](err); ok {
		return uerr.Err
	}
	return err
}
