package hello

import "testing"

func TestGreeting(t *testing.T) {
	for in, want := range map[string]string{"": "hello, world!", " Ada ": "hello, Ada!"} {
		if got := Greeting(in); got != want {
			t.Errorf("Greeting(%q) = %q, want %q", in, got, want)
		}
	}
}
