package notify

import (
	"testing"
	"time"
)

func TestNotifyWakesSubscribersOfTheKeyOnly(t *testing.T) {
	var h Hub
	run, stopRun := h.Subscribe("run:1")
	other, stopOther := h.Subscribe("run:2")
	defer stopOther()
	h.Notify("run:1")
	h.Notify("run:1") // coalesces with the first
	select {
	case <-run:
	case <-time.After(time.Second):
		t.Fatal("subscriber of run:1 was not woken")
	}
	select {
	case <-run:
		t.Fatal("two notifications before a read must arrive as one")
	default:
	}
	select {
	case <-other:
		t.Fatal("subscriber of run:2 was woken by run:1")
	default:
	}
	stopRun()
	h.Notify("run:1") // no subscriber left: must not block or panic
	if len(h.subs) != 1 {
		t.Errorf("%d keys remain subscribed, want 1", len(h.subs))
	}
}
