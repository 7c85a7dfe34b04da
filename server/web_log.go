package server

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/drover-cd/drover/store"
)

// webLogMax is how much of a log the step page renders: the last 4 MiB. The raw log
// link has all of it.
const webLogMax = 4 << 20

// logLine is a numbered, styled line of a step's log.
type logLine struct {
	N     int
	Spans []ansiSpan
}

// stepPage is the data of a step's log page.
type stepPage struct {
	Run     runJSON
	Step    stepJSON
	Lines   []logLine
	Skipped int    // lines left out at the start of a long log
	Next    int    // the number of the next line the stream brings
	Offset  int64  // bytes of the log the page shows; the live stream goes on from there
	Follow  string // the URL that streams the log while the step may still write; "" once done
	Raw     string // the whole log as text
}

// step shows a step's log, with line anchors and colours, and streams it while it grows.
func (w *web) step(rw http.ResponseWriter, r *http.Request) {
	run, ok := w.findRun(rw, r)
	if !ok {
		return
	}
	steps, err := w.s.cfg.Store.Steps(r.Context(), run.ID)
	if err != nil {
		w.failErr(rw, r, fmt.Errorf("steps of run %s #%d: %w", run.Project, run.Number, err))
		return
	}
	var st *store.Step
	for _, s := range steps {
		if s.Name == r.PathValue("step") {
			st = s
		}
	}
	if st == nil {
		w.fail(rw, r, http.StatusNotFound, fmt.Errorf("run %s #%d has no step %q", run.Project, run.Number, r.PathValue("step")))
		return
	}
	page := stepPage{Run: toRunJSON(run), Step: toStepJSON(st),
		Raw: fmt.Sprintf("/api/v1/projects/%s/runs/%d/steps/%s/log", run.Project, run.Number, url.PathEscape(st.Name))}
	live := activeStatus(run.Status) && activeStatus(st.Status)
	tail := &tailBuffer{max: webLogMax}
	if err := w.s.cfg.Logs.Follow(r.Context(), run.ID, st.Position, false, tail, nil); err != nil {
		w.failErr(rw, r, fmt.Errorf("read the log of %s: %w", st.Name, err))
		return
	}
	page.Lines, page.Skipped, page.Offset = tail.lines(live)
	page.Next = page.Skipped + len(page.Lines) + 1
	if live {
		page.Follow = page.Raw + "?follow=1"
	}
	w.render(rw, r, http.StatusOK, "step", fmt.Sprintf("%s · %s #%d", st.Name, run.Project, run.Number), page)
}

// tailBuffer keeps the last max bytes (or a little more) written to it, counting the
// lines it dropped.
type tailBuffer struct {
	max     int
	buf     []byte
	total   int64 // bytes written
	dropped int   // lines dropped from the start
	midLine bool  // the last drop cut a line: buf starts with its end
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.total += int64(len(p))
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		cut := len(t.buf) - t.max
		nl := bytes.IndexByte(t.buf[cut:], '\n')
		if nl >= 0 {
			cut += nl + 1 // drop whole lines only
		}
		t.midLine = nl < 0
		t.dropped += bytes.Count(t.buf[:cut], []byte{'\n'})
		t.buf = append(t.buf[:0], t.buf[cut:]...)
	}
	return len(p), nil
}

// lines parses what the buffer holds into numbered lines. While the log may still grow
// (partial), a last line without its newline is left for the stream to deliver whole;
// offset is where the lines returned end in the log.
func (t *tailBuffer) lines(partial bool) (lines []logLine, skipped int, offset int64) {
	data := t.buf
	if t.midLine { // the cut fell inside a huge line: start at the next one
		if nl := bytes.IndexByte(data, '\n'); nl >= 0 {
			data = data[nl+1:]
		} else {
			data = nil
		}
		t.dropped, t.midLine = t.dropped+1, false
	}
	end := len(data)
	if partial {
		end = bytes.LastIndexByte(data, '\n') + 1
	}
	offset = t.total - int64(len(data)-end)
	text := strings.TrimSuffix(string(data[:end]), "\n")
	if text == "" && end == 0 {
		return nil, t.dropped, offset
	}
	for i, l := range strings.Split(text, "\n") {
		lines = append(lines, logLine{N: t.dropped + i + 1, Spans: parseANSI(l)})
	}
	return lines, t.dropped, offset
}
