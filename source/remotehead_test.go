package source

import (
	"context"
	"testing"
)

func TestRemoteHeadIsTheDefaultBranch(t *testing.T) {
	ctx := context.Background()
	remote := workRepo(t)
	commit(t, remote, "first", map[string]string{"a.txt": "1"})
	gitTB(t, remote, "checkout", "-q", "-b", "trunk")
	if got, err := RemoteHead(ctx, remote); err != nil || got != "trunk" {
		t.Errorf("RemoteHead = %q, %v; want trunk", got, err)
	}
	if _, err := RemoteHead(ctx, "-x"); err == nil {
		t.Error("RemoteHead of an option: no error")
	}
	if _, err := RemoteHead(ctx, t.TempDir()+"/missing"); err == nil {
		t.Error("RemoteHead of a missing repository: no error")
	}
}
