package report

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Coverage is a line/statement coverage figure.
type Coverage struct {
	Covered, Total int64
	Format         string // "go" or "cobertura"
}

// Percent returns Covered as a percentage of Total, between 0 and 100.
// It returns 0 when Total is 0: a report with nothing to cover does not
// satisfy a coverage gate.
func (c Coverage) Percent() float64 {
	if c.Total <= 0 || c.Covered <= 0 {
		return 0
	}
	if c.Covered >= c.Total {
		return 100
	}
	return 100 * float64(c.Covered) / float64(c.Total)
}

// errCoverageFormat is returned for input that is neither format.
var errCoverageFormat = errors.New(`unrecognised coverage format: want a Go cover profile (starting with "mode:") or Cobertura XML`)

// ParseCoverage reads a coverage report, sniffing its format: a Go cover
// profile starts with "mode:", anything else starting with '<' is Cobertura
// XML, and any other input is an error. Leading white space and a UTF-8 byte
// order mark are ignored.
func ParseCoverage(r io.Reader) (Coverage, error) {
	c, err := parseCoverage(r)
	if err != nil {
		return Coverage{}, fmt.Errorf("report: parsing coverage: %w", err)
	}
	return c, nil
}

func parseCoverage(r io.Reader) (Coverage, error) {
	br := bufio.NewReader(r)
	if b, _ := br.Peek(3); bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	line := 0 // lines skipped before the first non-blank byte
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			return Coverage{}, fmt.Errorf("empty input: %w", errCoverageFormat)
		}
		if err != nil {
			return Coverage{}, err
		}
		if c == '\n' {
			line++
		}
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			br.UnreadByte()
			break
		}
	}
	head, _ := br.Peek(5)
	switch {
	case string(head) == "mode:":
		return parseGoProfile(br, line)
	case head[0] == '<':
		return parseCobertura(br)
	}
	return Coverage{}, errCoverageFormat
}

// blockKey identifies a block of a Go cover profile.
type blockKey struct {
	file                     string
	line0, col0, line1, col1 int64
}

// parseGoProfile reads a Go cover profile whose first line number is
// line+1. Blocks that appear more than once (-coverpkg, concatenated
// profiles) are counted once, covered if any of their counts is non-zero.
func parseGoProfile(r io.Reader, line int) (Coverage, error) {
	type block struct {
		stmts   int64
		covered bool
	}
	blocks := make(map[blockKey]*block)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		if mode, ok := strings.CutPrefix(s, "mode:"); ok {
			switch strings.TrimSpace(mode) {
			case "set", "count", "atomic":
				continue
			}
			return Coverage{}, fmt.Errorf("line %d: unknown mode %q, want set, count or atomic", line, strings.TrimSpace(mode))
		}
		key, stmts, count, err := parseBlock(s)
		if err != nil {
			return Coverage{}, fmt.Errorf("line %d: %w", line, err)
		}
		b := blocks[key]
		if b == nil {
			b = &block{}
			blocks[key] = b
		}
		b.stmts = max(b.stmts, stmts)
		b.covered = b.covered || count > 0
	}
	if err := sc.Err(); err != nil {
		return Coverage{}, fmt.Errorf("line %d: %w", line+1, err)
	}
	c := Coverage{Format: "go"}
	for _, b := range blocks {
		c.Total += b.stmts
		if b.covered {
			c.Covered += b.stmts
		}
	}
	return c, nil
}

// parseBlock parses "file:line0.col0,line1.col1 numStmts count", reading
// from the end so that file names may contain colons and spaces.
func parseBlock(s string) (k blockKey, stmts int64, count uint64, err error) {
	malformed := func(what string) error {
		return fmt.Errorf("malformed block %q: bad %s; want file:line.col,line.col statements count", s, what)
	}
	rest, countStr, ok := cutLast(s, ' ')
	if !ok || !isDigits(countStr) {
		return k, 0, 0, malformed("count")
	}
	if count, err = strconv.ParseUint(countStr, 10, 64); err != nil {
		return k, 0, 0, malformed("count")
	}
	rest, stmtStr, ok := cutLast(rest, ' ')
	if !ok || !isDigits(stmtStr) {
		return k, 0, 0, malformed("statement count")
	}
	if stmts, err = strconv.ParseInt(stmtStr, 10, 32); err != nil {
		return k, 0, 0, malformed("statement count")
	}
	file, pos, ok := cutLast(rest, ':')
	if !ok || file == "" {
		return k, 0, 0, malformed("file name")
	}
	start, end, ok := strings.Cut(pos, ",")
	if !ok {
		return k, 0, 0, malformed("position")
	}
	k.file = file
	var ok0, ok1 bool
	k.line0, k.col0, ok0 = parsePos(start)
	k.line1, k.col1, ok1 = parsePos(end)
	if !ok0 || !ok1 {
		return k, 0, 0, malformed("position")
	}
	return k, stmts, count, nil
}

// parsePos parses "line.col".
func parsePos(s string) (line, col int64, ok bool) {
	l, c, ok := strings.Cut(s, ".")
	if !ok || !isDigits(l) || !isDigits(c) {
		return 0, 0, false
	}
	line, err1 := strconv.ParseInt(l, 10, 64)
	col, err2 := strconv.ParseInt(c, 10, 64)
	return line, col, err1 == nil && err2 == nil
}

// cutLast splits s around the last sep.
func cutLast(s string, sep byte) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// isDigits reports whether s is a non-empty string of ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
