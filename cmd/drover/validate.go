package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/pipeline"
)

func validateCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a drover.yml and report every problem with its line and column",
		Long: `Check a drover.yml without running anything. Every problem is printed as
FILE:LINE:COL: message. Exit code 0 when the file is valid, 2 when it is not.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g, err := loadGraph(file)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s is valid: %d steps\n", file, len(g.Nodes))
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "drover.yml", "pipeline file")
	return cmd
}

// loadGraph reads, parses and compiles a pipeline file; every error is bad input.
func loadGraph(file string) (*pipeline.Graph, error) {
	return loadGraphAt(file, file)
}

// loadGraphAt reads path and names it display in messages: the path as the user wrote it.
func loadGraphAt(path, display string) (*pipeline.Graph, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			abs, _ := filepath.Abs(path)
			return nil, badInput(fmt.Errorf("%s: no pipeline file here (%s); write one, see 'drover schema' and the README", display, abs))
		}
		return nil, badInput(fmt.Errorf("read pipeline: %w", err))
	}
	p, err := pipeline.Parse(display, data)
	if err != nil {
		return nil, badInput(err)
	}
	g, err := pipeline.Compile(p)
	if err != nil {
		return nil, badInput(err)
	}
	return g, nil
}
