// Command seedruns fills a Drover data folder's database with many finished runs, for the
// server-scale benchmark (bench/server-scale.sh). It is a benchmark tool, not part of drover.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/drover-cd/drover/store"
	"github.com/drover-cd/drover/store/sqlstore"
)

func main() {
	data := flag.String("data", "", "drover data folder")
	runs := flag.Int("runs", 10000, "runs to create")
	project := flag.String("project", "bench", "project name")
	flag.Parse()
	if err := seed(*data, *project, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "seedruns:", err)
		os.Exit(1)
	}
}

func seed(data, project string, n int) error {
	ctx := context.Background()
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	db, err := sqlstore.Open(ctx, filepath.Join(data, "drover.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	p := &store.Project{Name: project}
	if err := db.CreateProject(ctx, p); err != nil {
		return err
	}
	start := time.Now().Add(-time.Duration(n) * time.Minute)
	for i := range n {
		r := &store.Run{ProjectID: p.ID, Status: "success", Branch: "main", Event: "push", Trigger: "seed",
			Commit: fmt.Sprintf("%040x", i), Message: fmt.Sprintf("change number %d", i)}
		if err := db.CreateRun(ctx, r); err != nil {
			return err
		}
		r.Started = start.Add(time.Duration(i) * time.Minute)
		r.Finished = r.Started.Add(42 * time.Second)
		if err := db.UpdateRun(ctx, r); err != nil {
			return err
		}
		for j, name := range []string{"test", "lint", "build"} {
			if err := db.SaveStep(ctx, &store.Step{RunID: r.ID, Name: name, Position: j, Status: "success",
				Attempts: 1, Started: r.Started, Finished: r.Finished}); err != nil {
				return err
			}
		}
	}
	return nil
}
