package docker

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNoEngineSaysSoAndHowToFixIt(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no.sock"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	connect := Lazy("test", Registry{})
	_, err := connect(ctx)
	if !errors.Is(err, ErrNoEngine) {
		t.Fatalf("err %v, want ErrNoEngine", err)
	}
	for _, want := range []string{"no.sock", "systemctl start docker", "DOCKER_HOST"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
