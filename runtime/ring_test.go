package runtime

import (
	"slices"
	"strings"
	"testing"
)

func TestRingSplitsLinesAcrossWrites(t *testing.T) {
	writes := []string{"a", "b\r\nc\n", "", "d\ne", "\n\nf"}
	for _, size := range []int{5, 3} {
		r := NewRing(size)
		for _, w := range writes {
			_, _ = r.Write([]byte(w))
		}
		want := []string{"ab", "c", "d", "e", "", "f"} // f is unfinished
		want = want[len(want)-size-1:]
		if got := r.Tail(10); !slices.Equal(got, want) {
			t.Errorf("ring of %d: tail = %q, want %q", size, got, want)
		}
		if got := r.Tail(2); !slices.Equal(got, []string{"", "f"}) {
			t.Errorf("ring of %d: tail(2) = %q", size, got)
		}
	}
}

func TestRingCutsLongLines(t *testing.T) {
	r := NewRing(2)
	_, _ = r.Write([]byte(strings.Repeat("x", 3*maxLine)))
	_, _ = r.Write([]byte(strings.Repeat("y", maxLine) + "\nshort\n"))
	got := r.Tail(2)
	if len(got) != 2 || got[0] != strings.Repeat("x", maxLine) || got[1] != "short" {
		t.Errorf("tail = %d lines of lengths %d…; want a line cut at %d, then short", len(got), len(got[0]), maxLine)
	}
}
