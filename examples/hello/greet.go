// Package hello is the smallest project with a Drover pipeline: tests with a coverage
// gate, a linter beside them, a build that publishes its binary as an artifact.
package hello

import "strings"

// Greeting greets name, or the world when name is blank.
func Greeting(name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		name = "world"
	}
	return "hello, " + name + "!"
}
