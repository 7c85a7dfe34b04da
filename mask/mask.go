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
	values  []string       // the values New was given, for Values
	needles [][]byte       // every form of every value, longest first
	first   [256][]int     // indexes into needles by first byte
	second  [256][4]uint64 // second bytes of the needles, a bit set by first byte
	longest int            // the longest needle's length
	// shortest is the shortest needle's length, and shift a Wu-Manber skip table over
	// it: for the hash of the 3 bytes ending a window of shortest bytes at i, how far
	// the next needle's start can be past i at the least (0: one may start at i). Most
	// output is passed over shortest-2 bytes at a time instead of byte by byte.
	shortest int
	shift    *[1 << shiftBits]uint8
}

// shiftBits sizes the skip table: 32 KiB stays in the CPU's first-level cache, which
// the skip loop, one dependent load after another, is bound by.
const shiftBits = 15

// hash3 is the skip table's index for the 3 bytes b[0:3].
func hash3(b []byte) uint32 {
	return (uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])) * 2654435761 >> (32 - shiftBits)
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
			add(base64.URLEncoding.EncodeToString([]byte(f)))
			for _, e := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
				for skew := range 3 {
					add(inBase64(e, f, skew))
				}
			}
			add(url.QueryEscape(f))
			add(url.PathEscape(f))
		}
		for line := range strings.Lines(v) {
			add(strings.TrimRight(line, "\r\n"))
		}
	}
	// Longest first: where two forms start at one place, the longer is hidden whole.
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	m := &Masker{values: slices.Clone(values)}
	for i, f := range forms {
		m.needles = append(m.needles, []byte(f))
		m.first[f[0]] = append(m.first[f[0]], i)
		m.second[f[0]][f[1]>>6] |= 1 << (f[1] & 63)
		m.longest = max(m.longest, len(f))
		if m.shortest == 0 || len(f) < m.shortest {
			m.shortest = len(f)
		}
	}
	if len(forms) > 0 {
		m.shift = new([1 << shiftBits]uint8)
		w := m.shortest
		for i := range m.shift {
			m.shift[i] = uint8(min(w-2, 255))
		}
		for _, n := range m.needles {
			for j := 2; j < w; j++ { // the block n[j-2:j+1] ends a window w-1-j before its end
				h := hash3(n[j-2 : j+1])
				m.shift[h] = min(m.shift[h], uint8(min(w-1-j, 255)))
			}
		}
	}
	return m
}

// inBase64 is the part of the base64 of v, preceded by skew other bytes (0 to 2), that
// v alone decides: how v shows inside the base64 of a longer text, such as a user:password
// pair in a Basic authorization header.
func inBase64(e *base64.Encoding, v string, skew int) string {
	enc := e.EncodeToString(append(make([]byte, skew), v...))
	from := (8*skew + 5) / 6      // the first character with no bits of the skew
	to := 8 * (skew + len(v)) / 6 // past the last character with no bits of what follows
	if to <= from {
		return ""
	}
	return enc[from:to]
}

// Values returns the values m was made from, so that m can be made again elsewhere
// (in another process: an instance's supervisor) with New. A nil m has none.
func (m *Masker) Values() []string {
	if m == nil {
		return nil
	}
	return slices.Clone(m.values)
}

// Empty reports whether m hides nothing.
func (m *Masker) Empty() bool { return m == nil || len(m.needles) == 0 }

// String returns s with every value hidden.
func (m *Masker) String(s string) string {
	if m.Empty() {
		return s
	}
	var out bytes.Buffer
	_, _ = m.mask(&out, []byte(s), true)
	return out.String()
}

// replacement is Replacement as bytes.
var replacement = []byte(Replacement)

// mask writes p to out with every value hidden and returns how many bytes of p it
// consumed: all of them when final, else it stops at a value that may go on past p's end.
// Plain text goes to out in as few writes as the values in it allow.
func (m *Masker) mask(out io.Writer, p []byte, final bool) (int, error) {
	start := 0 // p[start:i] is plain text not yet written
	i := 0
	for i < len(p) {
		if i = m.next(p, i); i >= len(p) {
			break
		}
		if !m.maybe(p, i) {
			i++
			continue
		}
		matched, partial := 0, false
		for _, c := range m.first[p[i]] { // longest first
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
			end, wait := m.overlaps(p, i, i+matched, final)
			if wait {
				return i, write(out, p[start:i])
			}
			if err := write(out, p[start:i], replacement); err != nil {
				return 0, err
			}
			i = end
			start = i
		case partial:
			return i, write(out, p[start:i])
		default:
			i++
		}
	}
	return len(p), write(out, p[start:])
}

// overlaps extends a value hidden at p[i:end] over the values that start inside it and
// end past it (two secrets that share characters), and returns the hidden span's end.
// wait reports a value starting inside that may go on past p's end (not when final).
func (m *Masker) overlaps(p []byte, i, end int, final bool) (int, bool) {
	for j := i + 1; j < end; j++ {
		if !m.maybe(p, j) {
			continue
		}
		for _, c := range m.first[p[j]] {
			n := m.needles[c]
			if j+len(n) <= end {
				continue
			}
			if !final && len(p)-j < len(n) && bytes.HasPrefix(n, p[j:]) {
				return 0, true
			}
			if bytes.HasPrefix(p[j:], n) {
				end = j + len(n)
				break
			}
		}
	}
	return end, false
}

// next returns the first position from i on where a needle may start: one whose window
// p[j:j+w] ends in a block that ends a needle's first w bytes, or one too near p's end
// to tell. It skips the rest (Wu-Manber). Two halves of p are scanned at once: each
// step of one scan waits on the load before it, so two independent scans take about the
// time of one.
func (m *Masker) next(p []byte, i int) int {
	w, shift := m.shortest, m.shift
	last := len(p) - w // the last position with a whole window
	if i > last {
		return i
	}
	// a scans [i, mid), b scans [mid, last]; each stops at a candidate or its end.
	mid := i + (last-i)/2
	a, b := i, mid
	aDone, bDone := false, false
	for !aDone || !bDone {
		if !aDone {
			if a >= mid {
				aDone = true
			} else if s := shift[hash3(p[a+w-3:a+w])]; s == 0 {
				return a // b's candidates come later
			} else {
				a += int(s)
			}
		}
		if !bDone {
			if b > last {
				bDone = true
			} else if s := shift[hash3(p[b+w-3:b+w])]; s == 0 {
				bDone = true
			} else {
				b += int(s)
			}
		}
	}
	return b
}

// write writes each non-empty part to out.
func write(out io.Writer, parts ...[]byte) error {
	for _, b := range parts {
		if len(b) > 0 {
			if _, err := out.Write(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// Writer hides values in what is written through it to an underlying writer. It holds
// back the end of a write that may be the start of a value until the next write shows
// whether it is; Flush writes what it holds. A Writer is not safe for concurrent use.
type Writer struct {
	m       *Masker
	w       io.Writer
	pending []byte // the end of the last write, held back
	joined  []byte // pending and the next write, reused: no allocation per write
}

// Writer returns a Writer to w.
func (m *Masker) Writer(w io.Writer) *Writer { return &Writer{m: m, w: w} }

// Write hides values in p and writes what is certain; it reports p as written.
func (mw *Writer) Write(p []byte) (int, error) {
	if mw.m.Empty() {
		return mw.w.Write(p)
	}
	written := len(p)
	if len(mw.pending) > 0 {
		if len(p) < mw.m.longest {
			mw.joined = append(append(mw.joined[:0], mw.pending...), p...)
			return written, mw.maskRest(mw.joined)
		}
		// Only the seam is copied: what was held back and as many bytes of p as the
		// longest value, which decides every value starting in what was held back
		// (but for values overlapping one that does; then all of p is joined).
		mw.joined = append(append(mw.joined[:0], mw.pending...), p[:mw.m.longest]...)
		n, err := mw.m.mask(mw.w, mw.joined, false)
		if err != nil {
			return 0, err
		}
		if n < len(mw.pending) {
			return written, mw.maskRest(append(append([]byte(nil), mw.pending[n:]...), p...))
		}
		p = p[n-len(mw.pending):]
		mw.pending = mw.pending[:0]
	}
	return written, mw.maskRest(p)
}

// maskRest masks buf, holding back its end when it may start a value.
func (mw *Writer) maskRest(buf []byte) error {
	n, err := mw.m.mask(mw.w, buf, false)
	if err != nil {
		return err
	}
	mw.pending = append(mw.pending[:0], buf[n:]...) // a few bytes, never all of buf's array
	return nil
}

// Flush writes what the Writer holds back, hidden where it is a whole value.
func (mw *Writer) Flush() error {
	if len(mw.pending) == 0 {
		return nil
	}
	_, err := mw.m.mask(mw.w, mw.pending, true)
	mw.pending = mw.pending[:0]
	return err
}
