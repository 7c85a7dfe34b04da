// Package mask hides secret values in output: every value, its base64 and URL-encoded
// forms and each line of a multi-line value become "***", also when a value arrives split
// across two writes. It works on bytes from anywhere (a step's pipe, an instance's log
// file, an error message), so the server, agents and instances' logs share it.
package mask

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/url"
	"slices"
	"strings"
)

// Replacement is what a hidden value shows as.
const Replacement = "***"

// MinLength is the shortest value worth hiding: shorter ones would mask ordinary text
// ("ok", "id") and are refused where secrets are set.
const MinLength = 4

// Masker knows the values to hide. It is safe for concurrent use; New makes it.
type Masker struct {
	needles [][]byte       // every form of every value, longest first
	first   [256][]int     // indexes into needles by first byte
	second  [256][4]uint64 // second bytes of the needles, a bit set by first byte
	longest int            // the longest needle's length
}

// maybe reports whether a needle may start at p[i]: a cheap filter on its first two
// bytes before any needle is compared.
func (m *Masker) maybe(p []byte, i int) bool {
	if len(m.first[p[i]]) == 0 {
		return false
	}
	if i+1 == len(p) {
		return true
	}
	b := p[i+1]
	return m.second[p[i]][b>>6]&(1<<(b&63)) != 0
}

// New returns a Masker for values; values shorter than MinLength are ignored.
func New(values []string) *Masker {
	seen := map[string]bool{}
	var forms []string
	add := func(s string) {
		if len(s) >= MinLength && !seen[s] {
			seen[s] = true
			forms = append(forms, s)
		}
	}
	for _, v := range values {
		for _, f := range []string{v, strings.TrimRight(v, "\r\n")} {
			add(f)
			add(base64.StdEncoding.EncodeToString([]byte(f)))
			add(base64.RawStdEncoding.EncodeToString([]byte(f)))
			add(base64.URLEncoding.EncodeToString([]byte(f)))
			add(base64.RawURLEncoding.EncodeToString([]byte(f)))
			add(url.QueryEscape(f))
			add(url.PathEscape(f))
		}
		for line := range strings.Lines(v) {
			add(strings.TrimRight(line, "\r\n"))
		}
	}
	// Longest first: where two forms start at one place, the longer is hidden whole.
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	m := &Masker{}
	for i, f := range forms {
		m.needles = append(m.needles, []byte(f))
		m.first[f[0]] = append(m.first[f[0]], i)
		m.second[f[0]][f[1]>>6] |= 1 << (f[1] & 63)
		m.longest = max(m.longest, len(f))
	}
	return m
}

// Empty reports whether m hides nothing.
func (m *Masker) Empty() bool { return m == nil || len(m.needles) == 0 }

// String returns s with every value hidden.
func (m *Masker) String(s string) string {
	if m.Empty() {
		return s
	}
	var out bytes.Buffer
	m.mask(&out, []byte(s), true)
	return out.String()
}

// mask writes p to out with every value hidden and returns how many bytes of p it
// consumed: all of them when final, else it stops at a value that may go on past p's end.
func (m *Masker) mask(out *bytes.Buffer, p []byte, final bool) int {
	start := 0 // p[start:i] is plain text not yet written
	i := 0
	for i < len(p) {
		if !m.maybe(p, i) {
			i++
			continue
		}
		cands := m.first[p[i]]
		matched, partial := 0, false
		for _, c := range cands { // longest first
			n := m.needles[c]
			if !final && len(p)-i < len(n) && bytes.HasPrefix(n, p[i:]) {
				// A value whose rest may be in the next write: wait for it rather than
				// hide a shorter value here and let the longer one's tail through.
				partial = true
				break
			}
			if bytes.HasPrefix(p[i:], n) {
				matched = len(n)
				break
			}
		}
		switch {
		case matched > 0:
			out.Write(p[start:i])
			out.WriteString(Replacement)
			i += matched
			start = i
		case partial:
			out.Write(p[start:i])
			return i
		default:
			i++
		}
	}
	out.Write(p[start:])
	return len(p)
}

// Writer hides values in what is written through it to an underlying writer. It holds
// back the end of a write that may be the start of a value until the next write shows
// whether it is; Flush writes what it holds. A Writer is not safe for concurrent use.
type Writer struct {
	m       *Masker
	w       io.Writer
	pending []byte
	out     bytes.Buffer
}

// Writer returns a Writer to w.
func (m *Masker) Writer(w io.Writer) *Writer { return &Writer{m: m, w: w} }

// Write hides values in p and writes what is certain; it reports p as written.
func (mw *Writer) Write(p []byte) (int, error) {
	if mw.m.Empty() {
		return mw.w.Write(p)
	}
	buf := append(mw.pending, p...)
	mw.out.Reset()
	n := mw.m.mask(&mw.out, buf, false)
	mw.pending = append(mw.pending[:0:0], buf[n:]...)
	if mw.out.Len() > 0 {
		if _, err := mw.w.Write(mw.out.Bytes()); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes what the Writer holds back, hidden where it is a whole value.
func (mw *Writer) Flush() error {
	if len(mw.pending) == 0 {
		return nil
	}
	mw.out.Reset()
	mw.m.mask(&mw.out, mw.pending, true)
	mw.pending = mw.pending[:0]
	_, err := mw.w.Write(mw.out.Bytes())
	return err
}
