package mask

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
)

func TestStringHidesEveryForm(t *testing.T) {
	const pw = "s3cr3t/value+xyz"
	m := New([]string{pw, "line-one\nline-two\n", "ab"})
	for _, c := range []struct{ in, want string }{
		{"SECRET_ENV=" + pw, "SECRET_ENV=***"},
		{"basic " + base64.StdEncoding.EncodeToString([]byte(pw)), "basic ***"},
		{"url " + base64.URLEncoding.EncodeToString([]byte(pw)), "url ***"},
		{"q=" + url.QueryEscape(pw) + "&x", "q=***&x"},
		{"p/" + url.PathEscape(pw), "p/***"},
		{"got line-two here", "got *** here"},
		{"twice " + pw + pw + " done", "twice ****** done"},
		{"ab is too short to hide", "ab is too short to hide"},
		{"nothing secret", "nothing secret"},
	} {
		if got := m.String(c.in); got != c.want {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := New(nil).String("as is"); got != "as is" {
		t.Errorf("an empty Masker changed %q", got)
	}
}

// A value is hidden however the writes cut it: at every split of the text into two
// writes, and one byte at a time.
func TestWriterHidesValuesSplitAcrossWrites(t *testing.T) {
	const pw = "hunter2-correct-horse"
	m := New([]string{pw, "hunter2"}) // one value the start of another
	text := "before " + pw + " middle hunter2 after " + base64.StdEncoding.EncodeToString([]byte(pw)) + "\n"
	want := "before *** middle *** after ***\n"
	for cut := 0; cut <= len(text); cut++ {
		var out bytes.Buffer
		w := m.Writer(&out)
		w.Write([]byte(text[:cut]))
		w.Write([]byte(text[cut:]))
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("cut at %d: %q, want %q", cut, out.String(), want)
		}
	}
	var out bytes.Buffer
	w := m.Writer(&out)
	for i := range len(text) {
		w.Write([]byte{text[i]})
		if strings.Contains(out.String(), "hunter") || strings.Contains(out.String(), "correct") {
			t.Fatalf("a piece of the value got out after byte %d: %q", i, out.String())
		}
	}
	w.Flush()
	if out.String() != want {
		t.Errorf("byte by byte: %q, want %q", out.String(), want)
	}
}

// What may be the start of a value is held back only until the end shows it is not.
func TestWriterHoldsBackOnlyWhatMayBeAValue(t *testing.T) {
	m := New([]string{"topsecret"})
	var out bytes.Buffer
	w := m.Writer(&out)
	w.Write([]byte("plain line\ntop"))
	if out.String() != "plain line\n" {
		t.Errorf("after a possible start: %q", out.String())
	}
	w.Write([]byte("ping\n"))
	if out.String() != "plain line\ntopping\n" {
		t.Errorf("after it turned out not to be one: %q", out.String())
	}
	w.Write([]byte("tops"))
	w.Flush()
	if out.String() != "plain line\ntopping\ntops" {
		t.Errorf("after Flush: %q", out.String())
	}
}

// BenchmarkWriter is the masker's cost on a step's output: 100 MB of log lines through
// a Writer with 20 secrets, against io.Copy of the same bytes (the cheapest honest way to
// pass them on unmasked).
func BenchmarkWriter(b *testing.B) {
	var line bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&line, "2026-12-03T10:00:00Z step %d: compiling package example.com/svc/internal/x%d ok\n", i, i)
	}
	chunk := line.Bytes()
	const total = 100 << 20
	var secrets []string
	for i := range 20 {
		secrets = append(secrets, fmt.Sprintf("secret-%02d-%x", i, i*7919))
	}
	run := func(b *testing.B, w func(io.Writer) io.Writer) {
		b.SetBytes(total)
		for b.Loop() {
			dst := w(io.Discard)
			for n := 0; n < total; n += len(chunk) {
				dst.Write(chunk)
			}
			if f, ok := dst.(*Writer); ok {
				f.Flush()
			}
		}
	}
	b.Run("copy", func(b *testing.B) { run(b, func(w io.Writer) io.Writer { return w }) })
	m := New(secrets)
	b.Run("masked-20", func(b *testing.B) { run(b, func(w io.Writer) io.Writer { return m.Writer(w) }) })
}

// FuzzWriter checks that a Writer, however its input is cut into writes, gives what
// String gives, and that no value survives.
func FuzzWriter(f *testing.F) {
	f.Add("x hunter2-correct-horse y hunter2", 5, 3)
	f.Add("aGFudGVyMi1jb3JyZWN0LWhvcnNl", 1, 1)
	f.Add("hunter2-corrhunter2-correct-horse", 12, 7)
	m := New([]string{"hunter2-correct-horse", "hunter2"})
	f.Fuzz(func(t *testing.T, text string, a, b int) {
		var out bytes.Buffer
		w := m.Writer(&out)
		cuts := []int{min(max(a, 0), len(text)), min(max(b, 0), len(text))}
		if cuts[0] > cuts[1] {
			cuts[0], cuts[1] = cuts[1], cuts[0]
		}
		w.Write([]byte(text[:cuts[0]]))
		w.Write([]byte(text[cuts[0]:cuts[1]]))
		w.Write([]byte(text[cuts[1]:]))
		w.Flush()
		if want := m.String(text); out.String() != want {
			t.Fatalf("Writer gave %q, String %q", out.String(), want)
		}
		if strings.Contains(out.String(), "hunter2") {
			t.Fatalf("a value survived: %q", out.String())
		}
	})
}

func TestOverlappingValuesAreHiddenWhole(t *testing.T) {
	m := New([]string{"user-a1b2", "a1b2-S3cretPassw0rd"})
	if got := m.String("creds user-a1b2-S3cretPassw0rd ok"); got != "creds *** ok" {
		t.Errorf("got %q", got)
	}
}

func TestValuesInsideLongerBase64AreHidden(t *testing.T) {
	m := New([]string{"S3cretPassw0rd"})
	for _, prefix := range []string{"", "u:", "ab:", "user:"} {
		header := base64.StdEncoding.EncodeToString([]byte(prefix + "S3cretPassw0rd"))
		got := m.String("Authorization: Basic " + header)
		if !strings.Contains(got, "***") {
			t.Errorf("prefix %q: the value's base64 inside %q is not hidden: %q", prefix, header, got)
		}
	}
}

// The seam between writes: a value begun in one write and ended in a long next one.
func TestAValueAcrossALongSecondWrite(t *testing.T) {
	m := New([]string{"S3cretPassw0rd-xyz", "Passw0rd-xyz-and-more"})
	var out bytes.Buffer
	w := m.Writer(&out)
	w.Write([]byte("abc S3cret"))
	w.Write([]byte("Passw0rd-xyz and then " + strings.Repeat("filler ", 40)))
	w.Write([]byte("end Passw0"))
	w.Write([]byte("rd-xyz-and-more" + strings.Repeat(".", 60)))
	w.Flush()
	if got := out.String(); strings.Contains(got, "Passw0rd") || strings.Count(got, "***") != 2 {
		t.Errorf("got %q", got)
	}
}
