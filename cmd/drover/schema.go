package main

import (
	"cmp"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/pipeline"
)

func schemaCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of drover.yml, for editors",
		Long: `Print the JSON Schema of drover.yml. Save it and point the YAML language server at
it, e.g. with a first line in drover.yml:

  # yaml-language-server: $schema=./drover.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := pipeline.Schema()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(s)
			return err
		},
	}
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print drover's version and the commit it was built from (also: drover --version)",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			cmd.Println("drover", versionString())
		},
	}
}

// version is stamped in at build time:
//
//	go build -ldflags "-X main.version=$(git describe --tags --always --dirty)" ./cmd/drover
var version string

// versionString is the stamped version, else what the Go toolchain recorded (a module
// version from go install, the commit of a build in a git checkout), else "(devel)".
func versionString() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if v == "" && ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if !ok {
		return cmp.Or(v, "(devel)")
	}
	commit, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if commit == "" {
		return cmp.Or(v, "(devel)")
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if dirty {
		commit += "-dirty"
	}
	if v == "" {
		return "(devel) commit " + commit
	}
	return v + " commit " + commit
}
