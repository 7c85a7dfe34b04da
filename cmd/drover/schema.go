package main

import (
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
		Short: "Print drover's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			v := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				v = bi.Main.Version
			}
			cmd.Println("drover", v)
		},
	}
}
