package pipeline

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrInvalid is what every error of a malformed pipeline file matches with errors.Is.
var ErrInvalid = errors.New("invalid pipeline")

// invalid is an ErrInvalid without a position, whose text is only its message.
type invalid struct{ msg string }

func (e *invalid) Error() string        { return e.msg }
func (e *invalid) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalid{msg: fmt.Sprintf(format, args...)}
}

// Error is one problem in a pipeline file, at the position where it was found.
type Error struct {
	File string
	Line int // 1-based
	Col  int // 1-based
	Msg  string
}

// Error formats the problem as FILE:LINE:COL: message, the form editors and terminals link.
func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Is reports that every positioned error is an ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// ErrorList is every problem found in one file, sorted by position.
type ErrorList []*Error

// Error lists the problems one per line.
func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Is reports that an ErrorList is an ErrInvalid.
func (l ErrorList) Is(target error) bool { return target == ErrInvalid }

// Unwrap exposes the single errors to errors.As.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// maxErrors bounds the problems reported for one file: a file of 100,000 bad entries
// would otherwise make an error of megabytes, shown with the run and kept in the store.
// The first hundred are enough to start fixing.
const maxErrors = 100

// report sorts the list by position and keeps its first maxErrors problems; when it drops
// some, a last entry at the first one dropped says how many.
func (l ErrorList) report() ErrorList {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Line != l[j].Line {
			return l[i].Line < l[j].Line
		}
		return l[i].Col < l[j].Col
	})
	if len(l) > maxErrors {
		first := l[maxErrors]
		more := &Error{File: first.File, Line: first.Line, Col: first.Col,
			Msg: fmt.Sprintf("%d more problems from here on are not listed; fix the ones above first", len(l)-maxErrors)}
		l = append(l[:maxErrors:maxErrors], more)
	}
	return l
}

// didYouMean suggests the closest of candidates to s, or "" when none is close:
// at most a third of the candidate's letters (and at least one) may differ, and never
// all of them ("c" is not a typo of "a"). Names longer than maxSuggest get no suggestion.
func didYouMean(s string, candidates []string) string {
	if len(s) > maxSuggest {
		return ""
	}
	best, bestDist := "", -1
	s = strings.ToLower(s)
	for _, c := range candidates {
		lc := strings.ToLower(c)
		// The distance is at least the difference in length: skip what cannot be close.
		if diff := len(s) - len(lc); len(lc) > maxSuggest || diff > max(1, len(c)/3) || -diff > max(1, len(c)/3) {
			continue
		}
		d := editDistance(s, lc)
		if d <= max(1, len(c)/3) && d < len(c) && (bestDist < 0 || d < bestDist) {
			best, bestDist = c, d
		}
	}
	return best
}

// maxSuggest is the longest name didYouMean compares: editDistance takes len(a)×len(b)
// steps, and a file may ask for a hundred suggestions among a thousand step names.
const maxSuggest = 64

// editDistance is the optimal-string-alignment distance between a and b: insertions,
// deletions, substitutions and swaps of two neighbours ("biuld" is one from "build").
// It keeps the last three rows of the table.
func editDistance(a, b string) int {
	n := len(b) + 1
	rows := make([]int, 3*n)
	older, prev, cur := rows[:n], rows[n:2*n], rows[2*n:]
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], older[j-2]+1)
			}
		}
		older, prev, cur = prev, cur, older
	}
	return prev[len(b)]
}

func suggestion(s string, candidates []string) string {
	if m := didYouMean(s, candidates); m != "" {
		return fmt.Sprintf("; did you mean %q?", m)
	}
	return ""
}
