package main

import (
	"log/slog"
	"os"
	"strings"
)

// logLevel is the level long-running commands (server, agent, proxy) log at: the
// DROVER_LOG_LEVEL environment variable (debug, info, warn or error), info by default.
func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(os.Getenv("DROVER_LOG_LEVEL")))); err != nil {
		return slog.LevelInfo
	}
	return l
}
