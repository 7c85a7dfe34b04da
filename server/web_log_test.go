package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/drover-cd/drover/store"
)

func TestWebStepPage(t *testing.T) {
	e := newWebEnv(t, true)
	e.project("shop")
	run := e.run("shop", "failure")
	name := "test (GOOS=linux/arm64)" // a matrix step: spaces, '=' and a slash
	e.step(&store.Step{RunID: run.ID, Name: name, Position: 0, Status: "failure", ExitCode: 2, Attempts: 1})
	w, err := e.logs.Create(run.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteLine("go test ./...")
	w.WriteLine("\x1b[1;31mFAIL\x1b[0m shop/cart <0.2s>")
	w.WriteLine("\x1b[32mok\x1b[0m   shop/api\x1b[K")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	url := "/p/shop/runs/1/steps/test%20%28GOOS=linux%2Farm64%29"
	if got := stepURL("shop", 1, name); got != url {
		t.Errorf("stepURL = %q, want %q", got, url)
	}
	resp, body := e.get(url, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", url, resp.StatusCode, body)
	}
	webContains(t, "step page", body, "<h1>test (GOOS=linux/arm64)</h1>", `class="badge st-failure"`, "exit code 2",
		`<div class="line" id="L1"><a class="ln" href="#L1" aria-label="line 1">1</a><span class="txt">go test ./...</span></div>`,
		`<div class="line" id="L2"><a class="ln" href="#L2" aria-label="line 2">2</a><span class="txt"><span class="fg-31 b">FAIL</span> shop/cart &lt;0.2s&gt;</span></div>`,
		`<span class="fg-32">ok</span>   shop/api</span>`,
		`id="log-search"`, `href="/api/v1/projects/shop/runs/1/steps/test%20%28GOOS=linux%2Farm64%29/log"`)
	if strings.Contains(body, "\x1b") || strings.Contains(body, "data-follow") {
		t.Error("the page holds escape codes, or follows a finished step's log")
	}
	if resp, _ := e.get("/p/shop/runs/1/steps/nope", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET a missing step: %d, want 404", resp.StatusCode)
	}
}

func TestWebStepPageFollowsRunningStep(t *testing.T) {
	e := newWebEnv(t, true)
	e.project("shop")
	run := e.run("shop", "running")
	e.step(&store.Step{RunID: run.ID, Name: "test", Position: 0, Status: "running", Attempts: 1})
	e.step(&store.Step{RunID: run.ID, Name: "later", Position: 1, Needs: []string{"test"}, Status: "pending"})
	w, err := e.logs.Create(run.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteLine("one")
	w.WriteLine("two")
	if err := w.Close(); err != nil { // flushes; the run still counts as going
		t.Fatal(err)
	}
	_, body := e.get("/p/shop/runs/1/steps/test", "")
	webContains(t, "running step page", body, `data-offset="8" data-next="3"`,
		`data-follow="/api/v1/projects/shop/runs/1/steps/test/log?follow=1"`, "● live", `id="L2"`)
	_, body = e.get("/p/shop/runs/1/steps/later", "")
	webContains(t, "pending step page", body, `data-offset="0" data-next="1"`, "data-follow=")
}

func TestWebTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 20}
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(tb, "line %02d\n", i) // 8 bytes each
	}
	fmt.Fprint(tb, "partial")
	lines, skipped, offset := tb.lines(true)
	if tb.total != 247 || offset != 240 {
		t.Errorf("total %d, offset %d; want 247, 240", tb.total, offset)
	}
	if len(lines) == 0 || skipped == 0 || lines[0].N != skipped+1 || lines[len(lines)-1].N != 30 {
		t.Fatalf("lines %+v, skipped %d", lines, skipped)
	}
	if got := lines[len(lines)-1].Spans[0].Text; got != "line 30" {
		t.Errorf("last line %q", got)
	}
	if first := lines[0].Spans[0].Text; first != fmt.Sprintf("line %02d", skipped+1) {
		t.Errorf("first line %q, skipped %d", first, skipped)
	}
	lines, _, offset = tb.lines(false)
	if offset != 247 || lines[len(lines)-1].Spans[0].Text != "partial" {
		t.Errorf("whole log: offset %d, last line %+v", offset, lines[len(lines)-1])
	}
}
