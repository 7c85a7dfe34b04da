package server

import (
	"reflect"
	"testing"
)

// sp shortens the table.
type sp = ansiSpan

// ansiCases are parseANSI's table; the browser test runs drover.js's ansiSpans over it too.
var ansiCases = []struct {
	name, in string
	want     []ansiSpan
}{
	{"plain", "hello <world>", []sp{{"", "hello <world>"}}},
	{"empty", "", nil},
	{"red then reset", "\x1b[31mred\x1b[0m plain", []sp{{"fg-31", "red"}, {"", " plain"}}},
	{"all normal colours", "\x1b[30ma\x1b[37mb", []sp{{"fg-30", "a"}, {"fg-37", "b"}}},
	{"bright colours", "\x1b[90ma\x1b[97mb", []sp{{"fg-90", "a"}, {"fg-97", "b"}}},
	{"bold and colour in one", "\x1b[1;32mok\x1b[m", []sp{{"fg-32 b", "ok"}}},
	{"bold alone", "\x1b[1mB\x1b[22mn", []sp{{"b", "B"}, {"", "n"}}},
	{"bold stays over colour change", "\x1b[1m\x1b[33my\x1b[39md", []sp{{"fg-33 b", "y"}, {"b", "d"}}},
	{"empty params reset", "\x1b[31mr\x1b[mp", []sp{{"fg-31", "r"}, {"", "p"}}},
	{"unsupported SGR ignored", "\x1b[4;31mu\x1b[42mv", []sp{{"fg-31", "u"}, {"fg-31", "v"}}},
	{"256 colour arguments skipped", "\x1b[38;5;34mx\x1b[38;2;1;2;3;1mb", []sp{{"", "x"}, {"b", "b"}}},
	{"erase line stripped", "progress\x1b[K done", []sp{{"", "progress done"}}},
	{"cursor moves stripped", "\x1b[2J\x1b[1;1Htop\x1b[?25l", []sp{{"", "top"}}},
	{"OSC title with BEL stripped", "\x1b]0;title\x07text", []sp{{"", "text"}}},
	{"OSC hyperlink with ST stripped", "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", []sp{{"", "link"}}},
	{"two-byte escape stripped", "a\x1b(Bb\x1b=c", []sp{{"", "abc"}}},
	{"unterminated CSI dropped", "a\x1b[31", []sp{{"", "a"}}},
	{"lone ESC dropped", "a\x1b", []sp{{"", "a"}}},
	{"control characters dropped, tab kept", "a\x00\bb\tc\x7f", []sp{{"", "ab\tc"}}},
	{"carriage return: what was written last", "50%\r100%", []sp{{"", "100%"}}},
	{"CRLF", "line\r", []sp{{"", "line"}}},
	{"invalid UTF-8 replaced", "a\xffb", []sp{{"", "a\uFFFDb"}}},
	{"unicode kept", "✓ grün", []sp{{"", "✓ grün"}}},
	{"style changes without text make no spans", "\x1b[31m\x1b[0m", nil},
}

func TestParseANSI(t *testing.T) {
	for _, tc := range ansiCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseANSI(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseANSI(%q) = %#v, want %#v", tc.in, got, tc.want)
			}
		})
	}
}
