package server

import (
	"bytes"
	"html"
	"html/template"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseANSI feeds arbitrary log lines to parseANSI and renders the spans with the
// step page's own line template. It must never panic; spans carry only known classes and
// printable text; the rendered line is the template's markup around escaped text, so no
// '<' from the log survives; and the text, parsed again, is one unstyled span of itself.
func FuzzParseANSI(f *testing.F) {
	page, err := webFS.ReadFile("web/templates/page_step.html")
	if err != nil {
		f.Fatal(err)
	}
	// The markup of one line: what the page repeats for each of .Lines.
	_, rest, ok := strings.Cut(string(page), "{{- range .Lines}}")
	fragment, _, ok2 := strings.Cut(rest, "{{- end}}")
	if !ok || !ok2 {
		f.Fatal("page_step.html has no {{- range .Lines}} ... {{- end}}")
	}
	line := template.Must(template.New("line").Parse(strings.TrimSpace(fragment)))
	classRE := regexp.MustCompile(`^(fg-(3[0-7]|9[0-7])( b)?|b)$`)
	markupRE := regexp.MustCompile(`^<div class="line" id="L7"><a class="ln" href="#L7" aria-label="line 7">7</a><span class="txt">(.*)</span></div>$`)
	spanRE := regexp.MustCompile(`<span class="(fg-(3[0-7]|9[0-7])( b)?|b)">|</span>`)

	for _, c := range ansiCases {
		f.Add(c.in)
	}
	f.Add("\x1b[31m<script>alert(1)</script>\x1b[0m</span><b>")
	f.Add("\x1b]8;;javascript:alert(1)\x07<a href=x>\x1b]8;;\x07")
	f.Add("a\x1b[38;2;1;2;3mb\x1b[48;5;1m&amp;c\x1b[;;1;;m\x1b[99999999999999999999m")
	f.Add("\xff\xfe\x1b[\xff<\x1b\xff\r\r<x>\r")
	f.Fuzz(func(t *testing.T, in string) {
		spans := parseANSI(in)
		var text strings.Builder
		for _, s := range spans {
			if s.Text == "" || !utf8.ValidString(s.Text) || (s.Class != "" && !classRE.MatchString(s.Class)) {
				t.Fatalf("span %+q", s)
			}
			for _, r := range s.Text {
				if (r < 0x20 && r != '\t') || r == 0x7f {
					t.Fatalf("span %+q holds control character %U", s, r)
				}
			}
			text.WriteString(s.Text)
		}
		if text.Len() > 3*len(in) { // each invalid byte may become a 3-byte U+FFFD
			t.Fatalf("%d bytes of text from %d bytes of log", text.Len(), len(in))
		}

		var out bytes.Buffer
		if err := line.Execute(&out, logLine{N: 7, Spans: spans}); err != nil {
			t.Fatal(err)
		}
		m := markupRE.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("rendered line is not the template's markup:\n%s", out.String())
		}
		inner := spanRE.ReplaceAllString(m[1], "")
		if strings.ContainsAny(inner, "<>") {
			t.Fatalf("log text rendered unescaped:\n%s", out.String())
		}
		if got := html.UnescapeString(inner); got != text.String() {
			t.Fatalf("rendered text %q, spans' text %q", got, text.String())
		}

		again := parseANSI(text.String())
		if want := []ansiSpan{{Text: text.String()}}; text.Len() > 0 && !reflect.DeepEqual(again, want) || text.Len() == 0 && again != nil {
			t.Fatalf("the text parsed again: %+q, want %+q", again, want)
		}
	})
}
