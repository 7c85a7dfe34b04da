package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"
)

// FuzzParseContentRange: parseContentRange never panics; what it accepts has a start of
// at least 0, and written back in each form clients send ("start-end", "bytes start-end",
// "bytes=start-end") it parses to the same range.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-0", "0-1023", "1024-2047", "bytes 0-99", "bytes=5-9", " 7 - 9 ", "5-4",
		"-1-5", "0--1", "1-", "-", "", "bytes", "bytes=", "0-9223372036854775807", "9223372036854775808-1",
		"0-1/2048", "+1-+2", "0x10-0x20", "１-２"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, err := parseContentRange(s)
		if err != nil {
			if start != 0 || end != 0 {
				t.Fatalf("%q: error %v with range %d-%d", s, err, start, end)
			}
			return
		}
		if start < 0 {
			t.Fatalf("%q: start %d", s, start)
		}
		for _, form := range []string{"%d-%d", "bytes %d-%d", "bytes=%d-%d"} {
			again := fmt.Sprintf(form, start, end)
			if s2, e2, err := parseContentRange(again); err != nil || s2 != start || e2 != end {
				t.Fatalf("%q is %d-%d, but %q is %d-%d, %v", s, start, end, again, s2, e2, err)
			}
		}
	})
}

// FuzzParseDigest: parseDigest never panics; it accepts exactly the valid sha256 and
// sha512 digests, as written, without answering; anything else gets a 400 whose body is
// the registry's JSON error with code DIGEST_INVALID or UNSUPPORTED and the digest.
func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{
		"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
		"sha384:38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b",
		"sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
		"sha256:e3b0", "sha256:", ":abc", "sha256", "", "md5:d41d8cd98f00b204e9800998ecf8427e",
		"sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", "sha256:../../etc/passwd",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rec := httptest.NewRecorder()
		d, ok := parseDigest(rec, s)
		want := digest.Digest(s).Validate() == nil && (digest.Digest(s).Algorithm() == digest.SHA256 || digest.Digest(s).Algorithm() == digest.SHA512)
		if ok != want {
			t.Fatalf("%q: accepted %v, want %v", s, ok, want)
		}
		if ok {
			if d.String() != s || rec.Body.Len() != 0 || rec.Code != http.StatusOK {
				t.Fatalf("%q: accepted as %q, answering %d %q", s, d, rec.Code, rec.Body)
			}
			return
		}
		var body errorBody
		if rec.Code != http.StatusBadRequest || json.Unmarshal(rec.Body.Bytes(), &body) != nil || len(body.Errors) != 1 {
			t.Fatalf("%q: refused with %d %q", s, rec.Code, rec.Body)
		}
		e := body.Errors[0]
		detail, _ := e.Detail.(map[string]any)
		if (e.Code != CodeDigestInvalid && e.Code != CodeUnsupported) || e.Message == "" || detail["digest"] == nil {
			t.Fatalf("%q: refused with %+v", s, e)
		}
	})
}
