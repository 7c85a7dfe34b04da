package pipeline

import "github.com/bmatcuk/doublestar/v4"

// Trigger is what started a run, as far as when: conditions care.
type Trigger struct {
	Branch string
	Event  string
	// Changed lists the files the change touched, slash-separated and relative to the
	// repository root. ChangedKnown is false when nobody could tell (no git history, a
	// manual run); path conditions then match, as a missing condition would.
	Changed      []string
	ChangedKnown bool
}

// Matches reports whether the trigger meets the branch, event and path conditions.
// Status is not looked at: it depends on the run's progress and the engine checks it.
// It returns a reason for the user when it does not match.
func (w When) Matches(t Trigger) (bool, string) {
	if len(w.Branch) > 0 && !anyMatch(w.Branch, t.Branch) {
		return false, "branch " + quoted(t.Branch) + " does not match when.branch"
	}
	if len(w.Event) > 0 && indexOf(w.Event, t.Event) < 0 {
		return false, "event " + quoted(t.Event) + " is not in when.event"
	}
	if len(w.Path) > 0 && t.ChangedKnown {
		for _, f := range t.Changed {
			if anyMatch(w.Path, f) {
				return true, ""
			}
		}
		return false, "no changed file matches when.path"
	}
	return true, ""
}

func anyMatch(globs []string, s string) bool {
	for _, g := range globs {
		if ok, _ := doublestar.Match(g, s); ok {
			return true
		}
	}
	return false
}

func quoted(s string) string {
	if s == "" {
		return `""`
	}
	return `"` + s + `"`
}
