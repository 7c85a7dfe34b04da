package source

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

// FuzzParseWebhook sends arbitrary bodies and events, signed with the right secret or a
// wrong one, as each provider. ParseWebhook must never panic; a wrong signature is always
// ErrBadSignature and a right one never is; a body over the limit is a *http.MaxBytesError;
// a push it accepts has a ref and no all-zeros hashes, and written back as a payload it
// parses to the same event.
func FuzzParseWebhook(f *testing.F) {
	const maxBody = 64 << 10
	providers := []struct{ name, push string }{
		{"github", "push"}, {"gitea", "push"}, {"forgejo", "push"}, {"gitlab", "Push Hook"},
	}
	for i, p := range providers {
		for _, body := range []string{githubPush, githubDelete, giteaPush, gitlabPush, gitlabTag} {
			f.Add(uint8(i), p.push, []byte(body), true)
		}
		f.Add(uint8(i), p.push, []byte(githubPush), false)
		f.Add(uint8(i), "ping", []byte(githubPing), true)
	}
	f.Add(uint8(3), "Tag Push Hook", []byte(gitlabTag), true)
	f.Add(uint8(0), "push", []byte(`{"ref":"refs/heads/x","before":"0000","after":"","repository":{"full_name":"a/b"}}`), true)
	f.Add(uint8(0), "push", []byte(`{"ref":""}`), true)
	f.Add(uint8(0), "push", []byte(`[1, 2`), true)
	f.Add(uint8(1), "", []byte(`{}`), true)
	f.Fuzz(func(t *testing.T, provider uint8, event string, body []byte, rightSecret bool) {
		p := providers[int(provider)%len(providers)]
		secret := hookSecret
		if !rightSecret {
			secret = "a guess"
		}
		ev, err := ParseWebhook(hook(string(body), signedBy(p.name, event, secret, string(body))...), hookSecret, maxBody)
		var tooBig *http.MaxBytesError
		switch {
		case event == "":
			if err == nil {
				t.Fatal("accepted a request without an event header")
			}
			return
		case !rightSecret && (p.name == "gitlab" || len(body) <= maxBody):
			// GitLab's token is checked first; the others' signature after the body is read.
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("wrong secret: err = %v, want ErrBadSignature", err)
			}
			return
		case len(body) > maxBody:
			if !errors.As(err, &tooBig) {
				t.Fatalf("%d bytes over a limit of %d: err = %v, want a *http.MaxBytesError", len(body), maxBody, err)
			}
			return
		case errors.Is(err, ErrBadSignature):
			t.Fatalf("right secret refused: %v", err)
		case err != nil:
			if (ev != nil) || (event == p.push) == errors.Is(err, ErrNotPush) {
				t.Fatalf("event %q: event %v, err %v", event, ev, err)
			}
			return
		}
		if event != p.push && !(p.name == "gitlab" && event == "Tag Push Hook") {
			t.Fatalf("event %q accepted as a push", event)
		}
		if ev == nil || ev.Provider != p.name || ev.Ref == "" ||
			(ev.Before != "" && isZeroHash(ev.Before)) || (ev.After != "" && isZeroHash(ev.After)) {
			t.Fatalf("event %+v", ev)
		}
		// The event, written back in the provider's form, reads the same.
		payload := map[string]any{"ref": ev.Ref, "before": ev.Before, "after": ev.After,
			"repository": map[string]string{"clone_url": ev.Repo}}
		again, err := json.Marshal(payload)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseWebhook(hook(string(again), signedBy(p.name, event, hookSecret, string(again))...), hookSecret, maxBody)
		if err != nil || *back != *ev {
			t.Fatalf("written back as %s: %+v, %v; want %+v", again, back, err, *ev)
		}
	})
}
