// Package words writes lists of names the way messages to people read: "a", "a and b",
// "a, b and c".
package words

import "strings"

// And joins names as "a", "a and b", "a, b and c"; "" for none.
func And(names []string) string {
	if n := len(names); n > 1 {
		return strings.Join(names[:n-1], ", ") + " and " + names[n-1]
	}
	return strings.Join(names, "")
}
