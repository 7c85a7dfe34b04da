package server

import (
	"strconv"
	"strings"
)

// ansiSpan is a run of log text in one style. Class is empty for unstyled text, else
// CSS classes such as "fg-31 b" (colour 31, bold).
type ansiSpan struct {
	Class string
	Text  string
}

// ansiStyle is the SGR state that matters: a foreground colour (0 for the default) and bold.
type ansiStyle struct {
	fg   int
	bold bool
}

func (st ansiStyle) class() string {
	switch {
	case st.fg != 0 && st.bold:
		return "fg-" + strconv.Itoa(st.fg) + " b"
	case st.fg != 0:
		return "fg-" + strconv.Itoa(st.fg)
	case st.bold:
		return "b"
	}
	return ""
}

// apply changes the style by the parameters of one SGR sequence ("1;31", "" = reset).
// Codes other than 0, 1, 22, 30–37, 39 and 90–97 are ignored; so are the arguments of
// 38 and 48 (256-colour and RGB colours).
func (st *ansiStyle) apply(params string) {
	codes := strings.FieldsFunc(params, func(r rune) bool { return r == ';' || r == ':' })
	if len(codes) == 0 {
		codes = []string{"0"}
	}
	for i := 0; i < len(codes); i++ {
		c, err := strconv.Atoi(codes[i])
		if err != nil {
			continue
		}
		switch {
		case c == 0:
			*st = ansiStyle{}
		case c == 1:
			st.bold = true
		case c == 22:
			st.bold = false
		case 30 <= c && c <= 37, 90 <= c && c <= 97:
			st.fg = c
		case c == 39:
			st.fg = 0
		case c == 38 || c == 48:
			if i+1 < len(codes) && codes[i+1] == "5" {
				i += 2
			} else if i+1 < len(codes) && codes[i+1] == "2" {
				i += 4
			}
		}
	}
}

// parseANSI splits one log line into styled spans. SGR colour codes become classes; every
// other escape sequence and control character is dropped. A carriage return keeps only
// what was written after it, as a terminal would show it. Each line starts unstyled.
// drover.js's ansiSpans does the same for streamed lines.
func parseANSI(line string) []ansiSpan {
	line = strings.TrimRight(line, "\r")
	if k := strings.LastIndexByte(line, '\r'); k >= 0 {
		line = line[k+1:]
	}
	line = strings.ToValidUTF8(line, "\uFFFD")
	var (
		spans []ansiSpan
		st    ansiStyle
		text  strings.Builder
	)
	flush := func() {
		if text.Len() > 0 {
			spans = append(spans, ansiSpan{Class: st.class(), Text: text.String()})
			text.Reset()
		}
	}
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == 0x1b && i+1 < len(line) && line[i+1] == '[': // CSI: parameters, then a final byte
			j := i + 2
			for j < len(line) && (line[j] < 0x40 || line[j] > 0x7e) {
				j++
			}
			if j < len(line) && line[j] == 'm' {
				flush()
				st.apply(line[i+2 : j])
			}
			i = j + 1
		case c == 0x1b && i+1 < len(line) && line[i+1] == ']': // OSC: up to BEL or ESC \
			j := i + 2
			for j < len(line) && line[j] != 0x07 && !(line[j] == 0x1b && j+1 < len(line) && line[j+1] == '\\') {
				j++
			}
			if j < len(line) && line[j] == 0x1b {
				j++
			}
			i = j + 1
		case c == 0x1b: // ESC, intermediate bytes, a final byte (ESC ( B, ESC =), or a lone ESC
			i++
			for i < len(line) && line[i] >= 0x20 && line[i] <= 0x2f {
				i++
			}
			if i < len(line) && line[i] >= 0x30 && line[i] <= 0x7e {
				i++
			}
		case c < 0x20 && c != '\t', c == 0x7f:
			i++
		default:
			text.WriteByte(c)
			i++
		}
	}
	flush()
	return spans
}
