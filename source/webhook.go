package source

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// PushEvent is what a push webhook says happened.
type PushEvent struct {
	Provider string // "github", "gitea", "forgejo" or "gitlab"
	Ref      string // full name: refs/heads/main, refs/tags/v1.2
	Before   string // hash before; "" when the push created the ref
	After    string // hash after; "" when the push deleted the ref
	Repo     string // the repository's clone URL, or its full name when the payload has none
}

// ErrBadSignature is returned by ParseWebhook when a request is not signed with the
// secret: callers answer 401.
var ErrBadSignature = errors.New("webhook signature does not match")

// ErrNotPush is returned by ParseWebhook for a correctly signed event that is not a push,
// such as the ping GitHub sends when a webhook is added: callers answer 202 or 204.
var ErrNotPush = errors.New("not a push event")

// DefaultMaxWebhookBody is the body size ParseWebhook accepts when given no limit: GitHub's
// own cap on payloads.
const DefaultMaxWebhookBody = 25 << 20

// ParseWebhook checks that r is a webhook signed with secret, from GitHub, Gitea, Forgejo or
// GitLab, and returns the push it reports. It reads at most maxBody bytes of the body
// (DefaultMaxWebhookBody when maxBody <= 0); a longer body is an error wrapping
// *http.MaxBytesError (answer 413). With an empty secret every request is refused.
//
// GitHub signs the body with HMAC-SHA256 in X-Hub-Signature-256 ("sha256=<hex>"),
// Gitea and Forgejo in X-Gitea-Signature or X-Forgejo-Signature (plain hex), and GitLab
// sends the secret itself in X-Gitlab-Token. The signature is checked before the body is
// parsed. Hashes of all zeros in the payload, for created and deleted refs, become "".
func ParseWebhook(r *http.Request, secret string, maxBody int64) (*PushEvent, error) {
	if secret == "" {
		return nil, fmt.Errorf("%w: no secret set for this project's webhooks", ErrBadSignature)
	}
	// Gitea and Forgejo also send GitHub's headers: look for theirs first.
	var provider, event string
	for _, p := range []struct{ name, header string }{
		{"forgejo", "X-Forgejo-Event"}, {"gitea", "X-Gitea-Event"},
		{"github", "X-GitHub-Event"}, {"gitlab", "X-Gitlab-Event"},
	} {
		if event = r.Header.Get(p.header); event != "" {
			provider = p.name
			break
		}
	}
	if provider == "" {
		return nil, errors.New("not a webhook of GitHub, Gitea, Forgejo or GitLab: no event header")
	}
	if provider == "gitlab" {
		// GitLab sends the secret, not a signature. Comparing hashes of both takes the
		// same time whatever the token is, its length included.
		token, want := sha256.Sum256([]byte(r.Header.Get("X-Gitlab-Token"))), sha256.Sum256([]byte(secret))
		if !hmac.Equal(token[:], want[:]) {
			return nil, fmt.Errorf("%w: X-Gitlab-Token", ErrBadSignature)
		}
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxWebhookBody
	}
	if r.Body == nil {
		r.Body = http.NoBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("read webhook body: %w", err)
	}
	if provider != "gitlab" {
		if err := checkHMAC(r.Header, provider, body, secret); err != nil {
			return nil, err
		}
	}

	var push bool
	switch provider {
	case "github", "gitea", "forgejo":
		push = event == "push"
	case "gitlab":
		push = event == "Push Hook" || event == "Tag Push Hook"
	}
	if !push {
		return nil, fmt.Errorf("%w: %s event %q", ErrNotPush, provider, event)
	}
	var p struct {
		Ref, Before, After string
		Repository         struct {
			CloneURL   string `json:"clone_url"`
			GitHTTPURL string `json:"git_http_url"` // GitLab, before 8.x
			FullName   string `json:"full_name"`
		}
		Project struct { // GitLab
			GitHTTPURL        string `json:"git_http_url"`
			PathWithNamespace string `json:"path_with_namespace"`
		}
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%s push payload: %w", provider, err)
	}
	if p.Ref == "" {
		return nil, fmt.Errorf("%s push payload: no ref", provider)
	}
	ev := &PushEvent{Provider: provider, Ref: p.Ref, Before: p.Before, After: p.After}
	if isZeroHash(ev.Before) {
		ev.Before = ""
	}
	if isZeroHash(ev.After) {
		ev.After = ""
	}
	for _, repo := range []string{p.Project.GitHTTPURL, p.Repository.CloneURL, p.Repository.GitHTTPURL,
		p.Project.PathWithNamespace, p.Repository.FullName} {
		if repo != "" {
			ev.Repo = repo
			break
		}
	}
	return ev, nil
}

// checkHMAC checks the HMAC-SHA256 signature of body that GitHub, Gitea and Forgejo send.
func checkHMAC(h http.Header, provider string, body []byte, secret string) error {
	var sig, header string
	switch provider {
	case "github":
		header = "X-Hub-Signature-256"
		var ok bool
		if sig, ok = strings.CutPrefix(h.Get(header), "sha256="); !ok {
			sig = ""
		}
	default:
		// Forgejo sends both headers, with the same value.
		for _, header = range []string{"X-Forgejo-Signature", "X-Gitea-Signature"} {
			if sig = h.Get(header); sig != "" {
				break
			}
		}
	}
	got, err := hex.DecodeString(sig)
	if sig == "" || err != nil {
		return fmt.Errorf("%w: no valid %s header", ErrBadSignature, header)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%w: %s", ErrBadSignature, header)
	}
	return nil
}
