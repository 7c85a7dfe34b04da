package report

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCoverageFixtures(t *testing.T) {
	tests := []struct {
		file           string
		format         string
		covered, total int64
		percent        float64
	}{
		// 9 distinct blocks listed twice by -coverpkg; 13 of 15 statements covered.
		{"go.out", "go", 13, 15, 100 * 13.0 / 15},
		// Two profiles concatenated, each with its own mode line.
		{"go-concat.out", "go", 6, 10, 60},
		// lines-covered/lines-valid win over the (trimmed) <line> elements.
		{"cobertura.xml", "cobertura", 301, 412, 100 * 301.0 / 412},
		// No totals: 8 distinct file+line pairs, 6 with hits.
		{"cobertura-lines.xml", "cobertura", 6, 8, 75},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "coverage", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ParseCoverage(f)
			if err != nil {
				t.Fatalf("ParseCoverage: %v", err)
			}
			want := Coverage{Covered: tt.covered, Total: tt.total, Format: tt.format}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
			if p := got.Percent(); math.Abs(p-tt.percent) > 1e-9 {
				t.Errorf("Percent() = %v, want %v", p, tt.percent)
			}
		})
	}
}

func TestParseCoverageInline(t *testing.T) {
	tests := []struct {
		name, doc      string
		covered, total int64
	}{
		{"bom, blank lines and CRLF", "\ufeff\n mode: count\r\n\r\na.go:1.1,2.2 3 0\r\nb.go:1.1,2.2 1 9\r\n", 1, 4},
		{"only a mode line", "mode: set\n", 0, 0},
		{"windows path with colon and space", `mode: set` + "\n" + `C:\src\my app\x.go:3.4,5.6 2 1` + "\n", 2, 2},
		{"huge count", "mode: atomic\nx.go:1.1,1.9 1 18446744073709551615\n", 1, 1},
		{"cobertura attrs disagree with lines", `<coverage lines-covered="1" lines-valid="4"><packages><package><classes><class filename="a"><lines><line number="1" hits="1"/></lines></class></classes></package></packages></coverage>`, 1, 4},
		{"cobertura zero lines", `<coverage lines-covered="0" lines-valid="0"/>`, 0, 0},
		{"cobertura float hits and lines outside classes ignored", `<coverage><line number="9" hits="1"/><packages><package><classes><class filename="a.py"><lines><line number="1" hits="1.0"/><line number="2" hits="0.0"/><line hits="4"/></lines></class></classes></package></packages></coverage>`, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCoverage(strings.NewReader(tt.doc))
			if err != nil {
				t.Fatalf("ParseCoverage: %v", err)
			}
			if got.Covered != tt.covered || got.Total != tt.total {
				t.Errorf("got %d/%d, want %d/%d", got.Covered, got.Total, tt.covered, tt.total)
			}
		})
	}
}

func TestParseCoverageErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"empty", "", "want a Go cover profile (starting with \"mode:\") or Cobertura XML"},
		{"lcov", "TN:\nSF:src/a.js\nDA:1,1\nend_of_record\n", "want a Go cover profile (starting with \"mode:\") or Cobertura XML"},
		{"bad mode", "mode: sometimes\n", `line 1: unknown mode "sometimes"`},
		{"missing count", "mode: set\na.go:1.1,2.2 3 1\na.go:3.1,4.2 3\n", "line 3: malformed block"},
		{"bad position", "mode: set\n\na.go:1,2.2 3 1\n", "line 3: malformed block"},
		{"negative statements", "mode: set\na.go:1.1,2.2 -3 1\n", "line 2: malformed block"},
		{"no file", "mode: set\n:1.1,2.2 3 1\n", "line 2: malformed block"},
		{"leading blank lines counted", "\n\nmode: set\nnonsense\n", "line 4: malformed block"},
		{"cobertura no line data", `<coverage line-rate="0.5" branch-rate="0"><packages/></coverage>`, "no line data"},
		{"cobertura only one total", `<coverage lines-valid="10"/>`, "no line data"},
		{"cobertura covered > valid", `<coverage lines-covered="11" lines-valid="10"/>`, "lines-covered 11 is more than lines-valid 10"},
		{"cobertura bad total", `<coverage lines-covered="1" lines-valid="ten"/>`, `invalid lines-valid attribute "ten"`},
		{"cobertura bad hits", `<coverage><class filename="a"><line number="3" hits="many"/></class></coverage>`, `a line 3: invalid hits attribute "many"`},
		{"cobertura truncated", `<coverage lines-covered="1" lines-valid="2"><packages>`, "unexpected EOF"},
		{"junit is not coverage", `<testsuites/>`, "root element is <testsuites>, want <coverage>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCoverage(strings.NewReader(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestPercent(t *testing.T) {
	tests := []struct {
		c    Coverage
		want float64
	}{
		{Coverage{Covered: 0, Total: 0}, 0},
		{Coverage{Covered: 7, Total: 10}, 70},
		{Coverage{Covered: 10, Total: 10}, 100},
		{Coverage{Covered: 1, Total: 3}, 100.0 / 3},
		{Coverage{Covered: 12, Total: 10}, 100}, // hand-built nonsense is clamped
		{Coverage{Covered: -1, Total: 10}, 0},
	}
	for _, tt := range tests {
		if got := tt.c.Percent(); got != tt.want {
			t.Errorf("%+v.Percent() = %v, want %v", tt.c, got, tt.want)
		}
	}
}
