package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// do sends one request with token as its bearer token.
func (a *agent) do(ctx context.Context, method, url, token string, body io.Reader, header map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", "drover-agent/"+a.cfg.Version)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach the server: %w", err)
	}
	return resp, nil
}

// answerError is what a refusal said: the server's {"error": ...} or the registry's
// {"errors": [{"message": ...}]}, with its status. It reads and closes nothing but a
// bounded part of the body.
func answerError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	var e struct {
		Error  string `json:"error"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	msg := ""
	if json.Unmarshal(data, &e) == nil {
		msg = e.Error
		if msg == "" && len(e.Errors) > 0 {
			msg = e.Errors[0].Message
		}
	}
	if msg == "" {
		msg = string(bytes.TrimSpace(data))
	}
	if msg == "" {
		return fmt.Errorf("the server answered HTTP %d", resp.StatusCode)
	}
	return fmt.Errorf("the server answered HTTP %d: %s", resp.StatusCode, msg)
}

// refusal reports a status by which the server says it gave a lease's attempt up (its
// token revoked, the lease unknown or another's): nothing more is to be sent about it.
func refusal(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusGone:
		return true
	}
	return false
}

// transient reports a status worth sending the request again for.
func transient(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
}

// backoff is a delay between retries that doubles from min to max.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

// d is the next delay.
func (b *backoff) d() time.Duration {
	if b.cur == 0 {
		return b.min
	}
	return b.cur
}

// wait sleeps the next delay, or until ctx ends (then it reports false).
func (b *backoff) wait(ctx context.Context) bool {
	d := b.d()
	b.cur = min(2*d, b.max)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (b *backoff) reset() { b.cur = 0 }

// drain reads what is left of a body so its connection can be used again, and closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// size is n bytes for people: "512 B", "8.0 MiB".
func size(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}
