package server

import (
	"time"

	"github.com/drover-cd/drover/runner"
)

// runWait is what a run waiting for an approval shows instead of a running clock: how long
// it ran before it stopped to wait, and since when it waits. Its clock does not tick while
// nobody decides (issue 16); it goes on, from the run's first start, once the run resumes.
type runWait struct {
	RanMS int64     // from the run's start to its stop
	Since time.Time // when it stopped: the end of its last step to end
}

// waitOf is the wait of a run waiting for an approval, from its steps; nil for a run that
// does not wait, or whose steps are not known.
func waitOf(run runJSON) *runWait {
	if run.Status != runner.Waiting || run.Started == nil {
		return nil
	}
	var since time.Time
	for _, st := range run.Steps {
		if st.Finished != nil && st.Finished.After(since) {
			since = *st.Finished
		}
	}
	if since.IsZero() {
		return nil
	}
	return &runWait{RanMS: max(since.Sub(*run.Started).Milliseconds(), 0), Since: since}
}

// clockTime is the time of day of t, in UTC as the pages' other times, with its date when
// that is not today.
func clockTime(t time.Time, now time.Time) string {
	t, now = t.UTC(), now.UTC()
	if t.YearDay() == now.YearDay() && t.Year() == now.Year() {
		return t.Format("15:04 UTC")
	}
	return t.Format("Jan 2, 15:04 UTC")
}
