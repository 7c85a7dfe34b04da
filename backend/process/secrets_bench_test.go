package process

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-cd/drover/engine"
	"github.com/drover-cd/drover/pipeline"
)

// BenchmarkStepOutputMasked is issue 15's figure without a server: a step that cats a
// 100 MB file of build-log lines through the engine (output split into lines, events to
// a sink), with 20 secrets in its environment (every byte through the masker) and with
// none. bench/secrets.sh measures the same through the real server.
//
//	go test ./backend/process -run '^$' -bench StepOutputMasked -benchtime 5x
func BenchmarkStepOutputMasked(b *testing.B) {
	dir := b.TempDir()
	line := "ok   github.com/example/shop/catalog/internal/store  0.412s  coverage: 81.2% of statements  [cached]\n"
	if err := os.WriteFile(filepath.Join(dir, "big.log"), []byte(strings.Repeat(line, 100_000_000/len(line))), 0o644); err != nil {
		b.Fatal(err)
	}
	values := map[string]string{}
	var names []string
	for i := range 20 {
		name := fmt.Sprintf("SECRET_%02d", i)
		names = append(names, name)
		r := make([]byte, 18)
		rand.Read(r)
		values[name] = base64.StdEncoding.EncodeToString(r) // as bench/secrets.sh's
	}
	for _, c := range []struct {
		name    string
		secrets []string
	}{{"none", nil}, {"20-secrets", names}} {
		yml := "steps:\n  - name: cat\n    run: cat big.log\n"
		if c.secrets != nil {
			yml += "    secrets: [" + strings.Join(c.secrets, ", ") + "]\n"
		}
		p, err := pipeline.Parse("drover.yml", []byte(yml))
		if err != nil {
			b.Fatal(err)
		}
		g, err := pipeline.Compile(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(100_000_000 / len(line) * len(line)))
			lines := 0
			sink := engine.SinkFunc(func(ev engine.Event) {
				if ev.Type == engine.StepLog {
					lines++
				}
			})
			e := &engine.Engine{Backend: &Backend{}}
			for b.Loop() {
				res, err := e.Run(context.Background(), engine.Job{Graph: g, Workspace: dir, Sink: sink,
					BaseEnv: []string{"PATH=" + os.Getenv("PATH")},
					Secrets: func(_ context.Context, req engine.SecretRequest) ([]string, error) {
						var out []string
						for _, n := range req.Names {
							out = append(out, n+"="+values[n])
						}
						return out, nil
					}})
				if err != nil || res.Status != engine.Success {
					b.Fatalf("%v %+v", err, res)
				}
			}
		})
	}
}
