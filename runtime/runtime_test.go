package runtime

import (
	"net"
	"strconv"
	"testing"
	"time"
)

func TestSpecValidate(t *testing.T) {
	good := Spec{Name: "catalog.staging.3f2a.1", Dir: "/srv/r", Command: "./server"}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	for name, change := range map[string]func(*Spec){
		"no name":       func(s *Spec) { s.Name = "" },
		"slash in name": func(s *Spec) { s.Name = "a/b" },
		"dot-dot name":  func(s *Spec) { s.Name = ".." },
		"no dir":        func(s *Spec) { s.Dir = "" },
		"no command":    func(s *Spec) { s.Command = "  " },
		"port":          func(s *Spec) { s.Port = 70000 },
		"stop timeout":  func(s *Spec) { s.StopTimeout = -time.Second },
	} {
		s := good
		change(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSpecTimeoutDefault(t *testing.T) {
	if got := (Spec{}).Timeout(); got != DefaultStopTimeout {
		t.Errorf("Timeout of 0 = %s", got)
	}
	if got := (Spec{StopTimeout: time.Second}).Timeout(); got != time.Second {
		t.Errorf("Timeout = %s", got)
	}
}

func TestFreePortCanBeListenedOn(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("listen on the free port: %v", err) // taken meanwhile: very unlikely
	}
	l.Close()
}
