package swarmtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/drover-cd/drover/internal/proctest"
)

// Sweep removes what clusters left behind when the process that made them died
// without closing them: their engines, containers, namespaces, cgroups and
// directories. Clusters of running processes are left alone. Start calls it.
func Sweep() error {
	return sweep(func(id string) bool {
		pid, ok := creator(id)
		return ok && proctest.Running(pid)
	})
}

// sweep tears down every cluster whose id live reports false for.
func sweep(live func(id string) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	for _, id := range leftoverIDs(ctx) {
		if !live(id) {
			errs = append(errs, teardown(ctx, id, nil))
		}
	}
	return errors.Join(errs...)
}

// leftoverIDs are the ids of the clusters that have a namespace, a directory or a
// cgroup parent on this machine.
func leftoverIDs(ctx context.Context) []string {
	var ids []string
	add := func(id string) {
		if _, ok := creator(id); ok && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, ns := range allNetns(ctx) {
		if id, ok := idOf(ns); ok {
			add(id)
		}
	}
	dirs, _ := filepath.Glob(dirPrefix + "*")
	for _, d := range dirs {
		add(strings.TrimPrefix(d, dirPrefix))
	}
	groups, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", namePrefix+"*"))
	for _, g := range groups {
		if id, ok := idOf(filepath.Base(g)); ok {
			add(id)
		}
	}
	return ids
}

// exists tells whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
