package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func registryCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Look after the built-in registry"}
	cmd.AddCommand(registryGCCommand())
	return cmd
}

// gcReport is the server's answer to POST /api/v1/registry/gc.
type gcReport struct {
	DryRun           bool     `json:"dryRun"`
	TagsRemoved      []string `json:"tagsRemoved"`
	ManifestsRemoved []string `json:"manifestsRemoved"`
	BlobsRemoved     int      `json:"blobsRemoved"`
	BytesFreed       int64    `json:"bytesFreed"`
	UploadsRemoved   int      `json:"uploadsRemoved"`
	BusyRepositories []string `json:"busyRepositories"`
}

func registryGCCommand() *cobra.Command {
	c := &clientOptions{}
	var dryRun bool
	gc := &cobra.Command{
		Use:   "gc [--dry-run]",
		Short: "Apply the retention policy and free unreferenced blobs now",
		Long: `Ask the server to collect garbage now (it also does so every --gc-every). Tags of runs the
retention policy does not keep are removed, then manifests no tag or index names, then blobs
nothing references and abandoned uploads. Pushes may go on meanwhile. With --dry-run,
print what would go and change nothing.`,
		Example: "  drover registry gc --dry-run",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep gcReport
			if err := c.call("POST", "/api/v1/registry/gc", map[string]bool{"dry_run": dryRun}, &rep); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			verb := "removed"
			if rep.DryRun {
				verb = "would remove"
			}
			for _, t := range rep.TagsRemoved {
				fmt.Fprintf(out, "tag       %s\n", t)
			}
			for _, m := range rep.ManifestsRemoved {
				fmt.Fprintf(out, "manifest  %s\n", m)
			}
			fmt.Fprintf(out, "%s %d tags, %d manifests, %d blobs (%s), %d abandoned uploads\n", verb,
				len(rep.TagsRemoved), len(rep.ManifestsRemoved), rep.BlobsRemoved, humanBytes(rep.BytesFreed), rep.UploadsRemoved)
			for _, r := range rep.BusyRepositories {
				fmt.Fprintf(out, "skipped %s: pushes kept changing it; the next collection takes it\n", r)
			}
			return nil
		},
	}
	gc.Flags().BoolVar(&dryRun, "dry-run", false, "only show what would be removed")
	c.flags(gc)
	return gc
}
