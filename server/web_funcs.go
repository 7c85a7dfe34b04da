package server

import (
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// funcs are the helpers the templates call.
func (w *web) funcs() template.FuncMap {
	return template.FuncMap{
		"plural": func(n int, one, many string) string {
			if n == 1 {
				return one
			}
			return many
		},
		"asset":         w.assetURL,
		"icon":          statusIcon,
		"iconID":        iconID,
		"iconSprite":    iconSprite,
		"active":        activeStatus,
		"dur":           formatDuration,
		"waitOf":        waitOf,
		"clock":         func(t time.Time) string { return clockTime(t, time.Now()) },
		"ago":           ago,
		"when":          func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"iso":           func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"short":         shortHash,
		"size":          formatSize,
		"pct":           func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + "%" },
		"frac":          func(f float64) string { return strconv.FormatFloat(f/100, 'f', 4, 64) },
		"runURL":        runURL,
		"stepURL":       stepURL,
		"eventURL":      func(p string, n int) string { return runURL(p, n) + "/events" },
		"deref":         func(t *time.Time) time.Time { return derefTime(t) },
		"releaseRunURL": releaseRunURL,
		"healthClass":   healthClass,
		"deployClass":   deployClass,
	}
}

// healthClass is the status whose colour and icon show an instance's health.
func healthClass(h string) string {
	switch h {
	case "healthy":
		return "success"
	case "unhealthy":
		return "failure"
	}
	return "pending"
}

// deployClass is the status whose colour and icon show a deployment's status.
func deployClass(s string) string {
	if s == "rolled-back" {
		return "cancelled"
	}
	return s
}

// activeStatus reports whether a run or step in status may still change.
func activeStatus(status string) bool {
	return status == "pending" || status == "running" || status == "waiting"
}

// formatDuration writes milliseconds the way drover.js does: <0.1s, 0.4s, 12.3s, 2m 05s, 1h 02m.
func formatDuration(ms int64) string {
	switch {
	case ms <= 0:
		return "—"
	case ms < 100:
		return "<0.1s"
	case ms < 60_000:
		return strconv.FormatFloat(float64(ms)/1000, 'f', 1, 64) + "s"
	case ms < 3_600_000:
		return fmt.Sprintf("%dm %02ds", ms/60_000, ms/1000%60)
	}
	return fmt.Sprintf("%dh %02dm", ms/3_600_000, ms/60_000%60)
}

// ago says how long before now t was, roughly.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// shortHash is the first 7 characters of a commit hash or a digest's hex.
func shortHash(h string) string {
	h = strings.TrimPrefix(h, "sha256:")
	if len(h) > 7 {
		return h[:7]
	}
	return h
}

// formatSize writes a byte count in B, KiB, MiB or GiB.
func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 2; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMG"[exp])
}

// runURL is the page of a run.
func runURL(project string, n int) string {
	return "/p/" + url.PathEscape(project) + "/runs/" + strconv.Itoa(n)
}

// stepURL is the log page of a run's step; step names may hold spaces, '/' and more.
func stepURL(project string, n int, step string) string {
	return runURL(project, n) + "/steps/" + url.PathEscape(step)
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
