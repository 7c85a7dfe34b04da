package duration

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"0s", 0},
		{"+5m", 5 * time.Minute},
		{"90s", 90 * time.Second},
		{"1h30m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"720h", 30 * Day},
		{"90d", 90 * Day},
		{"1d", 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"1.5d", 36 * time.Hour},
		{".5d", 12 * time.Hour},
		{"2d3h4m5s6ms7us8ns", 2*Day + 3*time.Hour + 4*time.Minute + 5*time.Second + 6*time.Millisecond + 7*time.Microsecond + 8},
		{"1µs", time.Microsecond},
		{"1μs", time.Microsecond},
		{"106751d", 106751 * Day},
		{"2562047h47m16.854775807s", time.Duration(1<<63 - 1)},
	} {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
		// Go's own syntax means the same here.
		if !strings.Contains(c.in, "d") {
			if want, err := time.ParseDuration(c.in); err != nil || want != got {
				t.Errorf("Parse(%q) = %v; time.ParseDuration says %v, %v", c.in, got, want, err)
			}
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ in, says string }{
		{"", "it is empty"},
		{"+", "it is empty"},
		{"1x", `unknown unit "x"`},
		{"1w", `unknown unit "w"`},
		{"d", "a number must come before each unit"},
		{"h1", "a number must come before each unit"},
		{" 1d", "a number must come before each unit"},
		{"1d ", `unknown unit "d "`},
		{"10", "10 has no unit"},
		{"1d2", "2 has no unit"},
		{"1..5h", `"1..5" is not a number`},
		{".h", `"." is not a number`},
		{"-1d", "cannot be negative"},
		{"-5m", "cannot be negative"},
		{"106752d", "too long (at most 106751d)"},
		{"9999999999999h", "too long"},
		{"99999999999999999999ns", "too long"},
		{"106751d23h59m59s1s", "too long"},
		{"1D", `unknown unit "D"`},
	} {
		got, err := Parse(c.in)
		if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("Parse(%q) = %v, %v; want an ErrSyntax saying %q", c.in, got, err, c.says)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, `"`+c.in+`"`) || !strings.Contains(msg, "write it like 90s, 15m, 2h, 7d or 1d12h") {
			t.Errorf("Parse(%q): error %q does not quote the input and say how to write it", c.in, msg)
		}
	}
}

func TestFormatRoundTrips(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{90 * Day, "90d"},
		{Day, "1d"},
		{36 * time.Hour, "36h0m0s"},
		{90 * time.Second, "1m30s"},
		{1500 * time.Millisecond, "1.5s"},
	} {
		if got := Format(c.d); got != c.want {
			t.Errorf("Format(%v) = %q, want %q", c.d, got, c.want)
		}
		if back, err := Parse(Format(c.d)); err != nil || back != c.d {
			t.Errorf("Parse(Format(%v)) = %v, %v", c.d, back, err)
		}
	}
}

func TestFlag(t *testing.T) {
	var keep, grace time.Duration
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	fs.Var(Flag(&keep, 30*Day), "keep-for", "keep artifacts younger than this")
	fs.Var(Flag(&grace, 0), "grace", "time a step gets")
	if keep != 30*Day || grace != 0 {
		t.Fatalf("defaults: keep %v, grace %v", keep, grace)
	}
	if got := fs.Lookup("keep-for").DefValue; got != "30d" {
		t.Errorf("keep-for's default shows as %q, want 30d", got)
	}
	if got := fs.Lookup("grace").DefValue; got != "0" {
		t.Errorf("grace's default shows as %q, want 0", got)
	}
	if err := fs.Parse([]string{"--keep-for", "1d12h", "--grace", "500ms"}); err != nil {
		t.Fatal(err)
	}
	if keep != 36*time.Hour || grace != 500*time.Millisecond {
		t.Errorf("parsed keep %v, grace %v", keep, grace)
	}
	err := fs.Parse([]string{"--keep-for", "1x"})
	if err == nil || !strings.Contains(err.Error(), `unknown unit "x"`) {
		t.Errorf("--keep-for 1x: %v", err)
	}
	if got := (&Value{}).Type(); got != "duration" {
		t.Errorf("Type = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"90d", "1d12h", "1.5h", "-1d", "1x", "106751d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrSyntax", s, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("Parse(%q) = %v: negative", s, d)
		}
		if back, err := Parse(Format(d)); err != nil || back != d {
			t.Fatalf("Parse(Format(Parse(%q))) = %v, %v; want %v", s, back, err, d)
		}
		// Without d, it agrees with Go.
		if !strings.Contains(s, "d") {
			if want, err := time.ParseDuration(s); err != nil || want != d {
				t.Fatalf("Parse(%q) = %v; time.ParseDuration = %v, %v", s, d, want, err)
			}
		}
	})
}
