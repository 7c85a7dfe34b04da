// Package duration is the one parser of every duration Drover takes from people: its
// flags, its API's fields and its YAML files. It reads Go's syntax (90s, 15m, 1h30m,
// 1.5h) plus d for days of 24 hours (90d, 1d12h), because token lifetimes and
// retention are counted in days. It imports only the standard library, so any package
// may use it, pipeline too.
package duration

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Day is the unit d: 24 hours, whatever the calendar says about daylight saving.
const Day = 24 * time.Hour

// ErrSyntax is wrapped by every error of Parse; the error itself says what is wrong
// and how to write it.
var ErrSyntax = errors.New("invalid duration")

// Parse reads s as Go's time.ParseDuration does, with d (24h) as one more unit:
// "90d", "720h", "1d12h", "1.5d", "30m", "0". A duration is a length of time, so a
// negative one is refused, as is one longer than time.Duration holds (about 106751d).
func Parse(s string) (time.Duration, error) {
	orig := s
	fail := func(format string, args ...any) (time.Duration, error) {
		return 0, fmt.Errorf("%w %q: %s; write it like 90s, 15m, 2h, 7d or 1d12h", ErrSyntax, orig, fmt.Sprintf(format, args...))
	}
	s = strings.TrimPrefix(s, "+")
	switch {
	case s == "":
		return fail("it is empty")
	case strings.HasPrefix(s, "-"):
		return fail("a duration cannot be negative")
	case s == "0":
		return 0, nil
	}
	var total time.Duration
	for s != "" {
		// One number, with an optional fraction, then its unit.
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		num := s[:i]
		switch {
		case num == "":
			return fail("a number must come before each unit")
		case num == "." || strings.Count(num, ".") > 1:
			return fail("%q is not a number", num)
		}
		j := i
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		unit := s[i:j]
		s = s[j:]
		var part time.Duration
		switch unit {
		case "":
			return fail("%s has no unit", num)
		case "d":
			h, err := time.ParseDuration(num + "h")
			if err != nil || h > math.MaxInt64/24 {
				return fail("it is too long (at most %dd)", int64(math.MaxInt64)/int64(Day))
			}
			part = h * 24
		case "ns", "us", "µs", "μs", "ms", "s", "m", "h":
			var err error
			if part, err = time.ParseDuration(num + unit); err != nil {
				return fail("it is too long (at most %dd)", int64(math.MaxInt64)/int64(Day))
			}
		default:
			return fail("unknown unit %q (use ns, us, ms, s, m, h or d)", unit)
		}
		if total > math.MaxInt64-part {
			return fail("it is too long (at most %dd)", int64(math.MaxInt64)/int64(Day))
		}
		total += part
	}
	return total, nil
}

// Format writes d so that Parse reads it back: whole days as "90d", anything else as
// Go writes it ("1h30m0s"), so "36h" stays "36h0m0s" rather than becoming "1d12h".
func Format(d time.Duration) string {
	if d > 0 && d%Day == 0 {
		return fmt.Sprintf("%dd", d/Day)
	}
	return d.String()
}

// Value is a duration flag: it satisfies spf13/pflag's Value interface (and the
// standard flag package's), so cobra commands take it with Flags().Var. Make one with
// Flag.
type Value struct{ p *time.Duration }

// Flag sets *p to def and returns the flag that sets *p from the command line with
// Parse:
//
//	cmd.Flags().Var(duration.Flag(&o.keepFor, 30*duration.Day), "keep-for", "keep artifacts younger than this")
func Flag(p *time.Duration, def time.Duration) *Value {
	*p = def
	return &Value{p: p}
}

// Set implements pflag.Value.
func (v *Value) Set(s string) error {
	d, err := Parse(s)
	if err != nil {
		return err
	}
	*v.p = d
	return nil
}

// String implements pflag.Value; "0" for zero, which pflag's help leaves out as a
// default.
func (v *Value) String() string {
	if v == nil || v.p == nil || *v.p == 0 {
		return "0"
	}
	return Format(*v.p)
}

// Type implements pflag.Value: help shows "--keep-for duration".
func (v *Value) Type() string { return "duration" }
