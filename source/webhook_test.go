package source

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const hookSecret = "It's a Secret to Everybody"

// Payloads as the providers send them, shortened: the fields Drover reads, and enough
// others around them to catch a decoding that trips over them.
const (
	githubPush = `{"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246",
"after":"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5","created":false,"deleted":false,"forced":false,
"base_ref":null,"compare":"https://github.com/Codertocat/Hello-World/compare/6113728f27ae...59b20b8d5c6f",
"commits":[{"id":"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5","message":"Update README.md",
"timestamp":"2019-05-15T15:20:30-04:00","author":{"name":"Codertocat","email":"21031067+Codertocat@users.noreply.github.com"},
"added":[],"removed":[],"modified":["README.md"]}],
"repository":{"id":186853002,"node_id":"MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=","name":"Hello-World",
"full_name":"Codertocat/Hello-World","private":false,"owner":{"name":"Codertocat","login":"Codertocat","id":21031067},
"html_url":"https://github.com/Codertocat/Hello-World","git_url":"git://github.com/Codertocat/Hello-World.git",
"ssh_url":"git@github.com:Codertocat/Hello-World.git","clone_url":"https://github.com/Codertocat/Hello-World.git",
"created_at":1557933565,"pushed_at":1557933657,"default_branch":"main"},
"pusher":{"name":"Codertocat","email":"21031067+Codertocat@users.noreply.github.com"},
"sender":{"login":"Codertocat","id":21031067,"type":"User","site_admin":false}}`

	githubDelete = `{"ref":"refs/heads/old-feature","before":"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5",
"after":"0000000000000000000000000000000000000000","created":false,"deleted":true,"forced":false,"commits":[],
"head_commit":null,"repository":{"full_name":"Codertocat/Hello-World","clone_url":"https://github.com/Codertocat/Hello-World.git"}}`

	githubPing = `{"zen":"Keep it logically awesome.","hook_id":30,"hook":{"type":"Repository","id":30,
"name":"web","active":true,"events":["push"],"config":{"content_type":"json","insecure_ssl":"0",
"url":"https://drover.example/hooks/hello"}},"repository":{"full_name":"Codertocat/Hello-World"}}`

	giteaPush = `{"ref":"refs/heads/develop","before":"28e1879d029cb852e4844d9c718537df08844e03",
"after":"bffeb74224043ba2feb48d137756c8a9331c449a",
"compare_url":"http://localhost:3000/gitea/webhooks/compare/28e1879d029cb852e4844d9c718537df08844e03...bffeb74224043ba2feb48d137756c8a9331c449a",
"commits":[{"id":"bffeb74224043ba2feb48d137756c8a9331c449a","message":"Webhooks Yay!",
"url":"http://localhost:3000/gitea/webhooks/commit/bffeb74224043ba2feb48d137756c8a9331c449a",
"author":{"name":"Gitea","email":"someone@gitea.io","username":"gitea"},
"committer":{"name":"Gitea","email":"someone@gitea.io","username":"gitea"},"timestamp":"2017-03-13T13:52:11-04:00"}],
"repository":{"id":140,"owner":{"id":1,"login":"gitea","full_name":"Gitea","email":"someone@gitea.io","username":"gitea"},
"name":"webhooks","full_name":"gitea/webhooks","private":false,"fork":false,
"html_url":"http://localhost:3000/gitea/webhooks","ssh_url":"ssh://gitea@localhost:2222/gitea/webhooks.git",
"clone_url":"http://localhost:3000/gitea/webhooks.git","default_branch":"master",
"created_at":"2017-02-26T04:29:06-05:00","updated_at":"2017-03-13T13:51:58-04:00"},
"pusher":{"id":1,"login":"gitea","username":"gitea"},"sender":{"id":1,"login":"gitea","username":"gitea"}}`

	gitlabPush = `{"object_kind":"push","event_name":"push","before":"95790bf891e76fee5e1747ab589903a6a1f80f22",
"after":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","ref":"refs/heads/master","ref_protected":true,
"checkout_sha":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","user_id":4,"user_name":"John Smith",
"user_username":"jsmith","user_email":"john@example.com","project_id":15,
"project":{"id":15,"name":"Diaspora","description":"","web_url":"http://example.com/mike/diaspora",
"git_ssh_url":"git@example.com:mike/diaspora.git","git_http_url":"http://example.com/mike/diaspora.git",
"namespace":"Mike","visibility_level":0,"path_with_namespace":"mike/diaspora","default_branch":"master"},
"repository":{"name":"Diaspora","url":"git@example.com:mike/diaspora.git","description":"",
"homepage":"http://example.com/mike/diaspora","git_http_url":"http://example.com/mike/diaspora.git",
"git_ssh_url":"git@example.com:mike/diaspora.git","visibility_level":0},
"commits":[{"id":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","message":"fixed readme","title":"fixed readme",
"timestamp":"2012-01-03T23:36:29+02:00","author":{"name":"GitLab dev user","email":"gitlabdev@dv6700.(none)"},
"added":["CHANGELOG"],"modified":["app/controller/application.rb"],"removed":[]}],"total_commits_count":4}`

	gitlabTag = `{"object_kind":"tag_push","event_name":"tag_push","before":"0000000000000000000000000000000000000000",
"after":"82b3d5ae55f7080f1e6022629cdb57bfae7cccc7","ref":"refs/tags/v1.0.0","checkout_sha":"82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
"user_id":1,"user_name":"John Smith","project_id":1,"project":{"id":1,"name":"Example",
"git_http_url":"http://example.com/jsmith/example.git","path_with_namespace":"jsmith/example"},
"commits":[],"total_commits_count":0}`
)

func hmacHex(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return hex.EncodeToString(mac.Sum(nil))
}

// hook builds a webhook request with body and headers.
func hook(body string, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/p", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

// signedBy returns the headers a provider sends for event with body signed with secret.
func signedBy(provider, event, secret, body string) []string {
	switch provider {
	case "github":
		return []string{"X-GitHub-Event", event, "X-Hub-Signature-256", "sha256=" + hmacHex(secret, body)}
	case "gitea": // Gitea sends GitHub's headers too
		return []string{"X-Gitea-Event", event, "X-Gitea-Signature", hmacHex(secret, body),
			"X-GitHub-Event", event, "X-Hub-Signature-256", "sha256=" + hmacHex("other", body)}
	case "forgejo":
		return []string{"X-Forgejo-Event", event, "X-Forgejo-Signature", hmacHex(secret, body),
			"X-Gitea-Event", event, "X-Gitea-Signature", hmacHex(secret, body)}
	case "gitlab":
		return []string{"X-Gitlab-Event", event, "X-Gitlab-Token", secret}
	}
	panic(provider)
}

func TestParseWebhookPush(t *testing.T) {
	for _, tc := range []struct {
		provider, event, body string
		want                  PushEvent
	}{
		{"github", "push", githubPush, PushEvent{"github", "refs/heads/main", "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
			"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5", "https://github.com/Codertocat/Hello-World.git"}},
		{"github", "push", githubDelete, PushEvent{"github", "refs/heads/old-feature", "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5",
			"", "https://github.com/Codertocat/Hello-World.git"}},
		{"gitea", "push", giteaPush, PushEvent{"gitea", "refs/heads/develop", "28e1879d029cb852e4844d9c718537df08844e03",
			"bffeb74224043ba2feb48d137756c8a9331c449a", "http://localhost:3000/gitea/webhooks.git"}},
		{"forgejo", "push", giteaPush, PushEvent{"forgejo", "refs/heads/develop", "28e1879d029cb852e4844d9c718537df08844e03",
			"bffeb74224043ba2feb48d137756c8a9331c449a", "http://localhost:3000/gitea/webhooks.git"}},
		{"gitlab", "Push Hook", gitlabPush, PushEvent{"gitlab", "refs/heads/master", "95790bf891e76fee5e1747ab589903a6a1f80f22",
			"da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "http://example.com/mike/diaspora.git"}},
		{"gitlab", "Tag Push Hook", gitlabTag, PushEvent{"gitlab", "refs/tags/v1.0.0", "",
			"82b3d5ae55f7080f1e6022629cdb57bfae7cccc7", "http://example.com/jsmith/example.git"}},
	} {
		ev, err := ParseWebhook(hook(tc.body, signedBy(tc.provider, tc.event, hookSecret, tc.body)...), hookSecret, 1<<20)
		if err != nil {
			t.Errorf("%s %s: %v", tc.provider, tc.want.Ref, err)
			continue
		}
		if *ev != tc.want {
			t.Errorf("%s: got %+v\nwant %+v", tc.provider, *ev, tc.want)
		}
	}
	// Hex digits in capitals are the same signature.
	sig := "sha256=" + strings.ToUpper(hmacHex(hookSecret, githubPush))
	if _, err := ParseWebhook(hook(githubPush, "X-GitHub-Event", "push", "X-Hub-Signature-256", sig), hookSecret, 0); err != nil {
		t.Errorf("upper-case signature: %v", err)
	}
}

func TestParseWebhookBadSignature(t *testing.T) {
	for _, p := range []struct{ provider, event, body string }{
		{"github", "push", githubPush}, {"gitea", "push", giteaPush},
		{"forgejo", "push", giteaPush}, {"gitlab", "Push Hook", gitlabPush},
	} {
		tampered := strings.Replace(p.body, `"ref":"refs/heads/`, `"ref":"refs/heads/evil-`, 1)
		headers := signedBy(p.provider, p.event, hookSecret, p.body)
		missing := []string{headers[0], headers[1]} // the event header alone
		for _, tc := range []struct {
			name    string
			r       *http.Request
			secret  string
			refused bool
		}{
			{"tampered body", hook(tampered, headers...), hookSecret, p.provider != "gitlab"}, // GitLab signs nothing
			{"wrong secret", hook(p.body, signedBy(p.provider, p.event, "guess", p.body)...), hookSecret, true},
			{"no signature header", hook(p.body, missing...), hookSecret, true},
			{"no secret configured", hook(p.body, signedBy(p.provider, p.event, "", p.body)...), "", true},
			{"a ping with a wrong secret", hook(githubPing, signedBy(p.provider, "ping", "guess", githubPing)...), hookSecret, true},
		} {
			_, err := ParseWebhook(tc.r, tc.secret, 1<<20)
			if errors.Is(err, ErrBadSignature) != tc.refused {
				t.Errorf("%s, %s: err = %v, want ErrBadSignature: %v", p.provider, tc.name, err, tc.refused)
			}
		}
	}
	bad := hook(githubPush, "X-GitHub-Event", "push", "X-Hub-Signature-256", "sha256=not-hex")
	if _, err := ParseWebhook(bad, hookSecret, 0); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signature not in hex: err = %v, want ErrBadSignature", err)
	}
	sha1 := hook(githubPush, "X-GitHub-Event", "push", "X-Hub-Signature", "sha1=0123")
	if _, err := ParseWebhook(sha1, hookSecret, 0); !errors.Is(err, ErrBadSignature) {
		t.Errorf("only the old SHA-1 signature: err = %v, want ErrBadSignature", err)
	}
}

func TestParseWebhookNotPush(t *testing.T) {
	for _, tc := range []struct{ provider, event, body string }{
		{"github", "ping", githubPing},
		{"github", "pull_request", `{"action":"opened","number":2}`},
		{"gitea", "issues", `{"action":"opened"}`},
		{"forgejo", "release", `{"action":"published"}`},
		{"gitlab", "Merge Request Hook", `{"object_kind":"merge_request"}`},
	} {
		_, err := ParseWebhook(hook(tc.body, signedBy(tc.provider, tc.event, hookSecret, tc.body)...), hookSecret, 1<<20)
		if !errors.Is(err, ErrNotPush) {
			t.Errorf("%s %s: err = %v, want ErrNotPush", tc.provider, tc.event, err)
		}
	}
}

func TestParseWebhookMalformed(t *testing.T) {
	// Too big: an error callers can turn into 413.
	_, err := ParseWebhook(hook(githubPush, signedBy("github", "push", hookSecret, githubPush)...), hookSecret, 100)
	var tooBig *http.MaxBytesError
	if !errors.As(err, &tooBig) || errors.Is(err, ErrBadSignature) {
		t.Errorf("body over the limit: err = %v, want a *http.MaxBytesError", err)
	}
	for name, r := range map[string]*http.Request{
		"no event header": hook(githubPush, "X-Hub-Signature-256", "sha256="+hmacHex(hookSecret, githubPush)),
		"not JSON":        hook("ref=main", signedBy("github", "push", hookSecret, "ref=main")...),
		"no ref":          hook(`{"after":"abc"}`, signedBy("gitea", "push", hookSecret, `{"after":"abc"}`)...),
	} {
		_, err := ParseWebhook(r, hookSecret, 1<<20)
		if err == nil || errors.Is(err, ErrBadSignature) || errors.Is(err, ErrNotPush) {
			t.Errorf("%s: err = %v, want another error", name, err)
		}
	}
}
