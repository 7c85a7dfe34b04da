// Package proctest answers, for tests, whether a process still runs: what a test that
// kills process trees or restarts a server checks of the processes it left.
package proctest

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"
)

// Running reports whether pid runs now. A zombie (dead, waiting for its parent to reap
// it) does not count.
func Running(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// Alive reports whether pid keeps running for the next second, giving a kill sent just
// before a moment to land.
func Alive(pid int) bool {
	for range 100 {
		if !Running(pid) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
