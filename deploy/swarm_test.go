package deploy

import (
	"strings"
	"testing"
)

func TestGenerationNames(t *testing.T) {
	none := func(string) bool { return false }
	digest := "sha256:3f2a1b2c3d4e5f60718293a4b5c6d7e8f9"
	if got := generationName("Web", "production", digest, none); got != "web-production-3f2a1b2c3d4e" {
		t.Errorf("name = %q", got)
	}
	taken := map[string]bool{"web-production-3f2a1b2c3d4e": true, "web-production-3f2a1b2c3d4e-2": true}
	if got := generationName("web", "production", digest, func(n string) bool { return taken[n] }); got != "web-production-3f2a1b2c3d4e-3" {
		t.Errorf("name when taken = %q", got)
	}
	// Long names are cut with a hash of the whole: two environments that differ only
	// after the cut get different names, and every name fits Swarm's 63 characters.
	long := strings.Repeat("a", 38)
	a := generationName("api", "eph-"+long+"-1", digest, none)
	b := generationName("api", "eph-"+long+"-2", digest, none)
	if a == b || len(a) > 63 || len(b) > 63 {
		t.Errorf("long names: %q and %q", a, b)
	}
}

func TestAnswersTellsAnHTTPAnswerFromNone(t *testing.T) {
	for msg, want := range map[string]bool{
		"GET /healthz: 500 Internal Server Error":                                      true,
		"GET /healthz: 503 Service Unavailable":                                        true,
		"GET /healthz: dial tcp 10.0.0.3:30001: connect: no route to host":             false,
		"GET /healthz: no answer in 2s":                                                false,
		`GET /healthz: Get "http://10.0.0.3:30001/healthz": context deadline exceeded`: false,
		"": false,
	} {
		if got := answers(msg); got != want {
			t.Errorf("answers(%q) = %v, want %v", msg, got, want)
		}
	}
}
