package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/drover-cd/drover/artifact"
	"github.com/drover-cd/drover/release"
)

func artifactCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "artifact",
		Short: "List and download the artifacts runs published",
	}
	cmd.AddCommand(artifactPullCommand(), artifactListCommand())
	return cmd
}

func artifactListCommand() *cobra.Command {
	var c clientOptions
	cmd := &cobra.Command{
		Use:   "list PROJECT",
		Short: "List a project's releases, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rels []release.Release
			if err := c.call(http.MethodGet, "/api/v1/projects/"+args[0]+"/releases", nil, &rels); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(rels) == 0 {
				fmt.Fprintf(out, "%s has no releases yet: a run that passes every step and gate publishes one\n", args[0])
				return nil
			}
			fmt.Fprintf(out, "%-8s %-12s %-10s %-10s %-9s %s\n", "TAG", "COMMIT", "SIZE", "TESTS", "COVERAGE", "DIGEST")
			for _, r := range rels {
				tests, coverage := "-", "-"
				if r.Tests != nil {
					tests = fmt.Sprintf("%d/%d", r.Tests.Passed, r.Tests.Passed+r.Tests.Failed)
				}
				if r.Coverage != nil {
					coverage = fmt.Sprintf("%.1f%%", *r.Coverage)
				}
				fmt.Fprintf(out, "%-8s %-12s %-10s %-10s %-9s %s\n", r.Tag, shortCommit(r.Commit), humanBytes(r.Size), tests, coverage, r.Digest)
			}
			return nil
		},
	}
	c.flags(cmd)
	return cmd
}

func artifactPullCommand() *cobra.Command {
	var c clientOptions
	cmd := &cobra.Command{
		Use:   "pull PROJECT[:REF] DIR",
		Short: "Download a run's artifact into DIR",
		Long: `Download the files a run published into DIR, verifying every byte against its digest.

REF is a release tag (r12), a run number (12), a commit or a digest; without it, the
project's newest release. The files land at the paths the pipeline declared them under
(for example DIR/dist/app).`,
		Example: "  drover artifact pull hello:r12 ./out\n  drover artifact pull hello ./out",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			project, ref, _ := strings.Cut(args[0], ":")
			if ref == "" {
				var rels []release.Release
				if err := c.call(http.MethodGet, "/api/v1/projects/"+project+"/releases", nil, &rels); err != nil {
					return err
				}
				if len(rels) == 0 {
					return badInput(fmt.Errorf("%s has no releases yet; name a run: %s:RUN", project, project))
				}
				ref = rels[0].Tag
			}
			return c.pull(cmd.Context(), cmd.OutOrStdout(), project, ref, args[1])
		},
	}
	c.flags(cmd)
	return cmd
}

// pull fetches the artifact manifest PROJECT:REF over the OCI distribution API and
// extracts every layer into dir.
func (c *clientOptions) pull(ctx context.Context, out io.Writer, project, ref, dir string) error {
	repo, err := release.Repository(project)
	if err != nil {
		return badInput(err)
	}
	body, err := c.registryGet(ctx, "/v2/"+repo+"/manifests/"+ref, ocispec.MediaTypeImageManifest)
	if err != nil {
		return err
	}
	defer body.Close()
	var m ocispec.Manifest
	if err := json.NewDecoder(io.LimitReader(body, 4<<20)).Decode(&m); err != nil {
		return fmt.Errorf("%s:%s: read the manifest: %w", project, ref, err)
	}
	if m.ArtifactType != artifact.ArtifactType {
		return badInput(fmt.Errorf("%s:%s is not a Drover run artifact (artifactType %q); use docker or oras for images", project, ref, m.ArtifactType))
	}
	for _, l := range m.Layers {
		if l.MediaType != artifact.LayerMediaType {
			continue
		}
		if err := c.pullLayer(ctx, repo, l, dir); err != nil {
			return err
		}
		fmt.Fprintf(out, "pulled %-30s %10s  %s\n", l.Annotations[ocispec.AnnotationTitle], humanBytes(l.Size), l.Digest)
	}
	fmt.Fprintf(out, "%s:%s is in %s\n", project, ref, dir)
	return nil
}

// pullLayer streams one layer into dir, failing if its bytes do not match its digest.
func (c *clientOptions) pullLayer(ctx context.Context, repo string, l ocispec.Descriptor, dir string) error {
	body, err := c.registryGet(ctx, "/v2/"+repo+"/blobs/"+l.Digest.String(), "")
	if err != nil {
		return err
	}
	defer body.Close()
	v := l.Digest.Verifier()
	if err := artifact.Extract(ctx, io.TeeReader(body, v), dir); err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	if !v.Verified() {
		return fmt.Errorf("layer %s: the downloaded bytes do not match the digest; nothing was trusted, pull again", l.Digest)
	}
	return nil
}

// registryGet GETs a registry path with the client's token and returns the body.
func (c *clientOptions) registryGet(ctx context.Context, path, accept string) (io.ReadCloser, error) {
	token, err := c.bearer()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.server, "/")+path, nil)
	if err != nil {
		return nil, badInput(fmt.Errorf("--server %s: %w", c.server, err))
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach the server at %s (is 'drover server' running?): %w", c.server, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e struct {
			Errors []struct{ Code, Message string } `json:"errors"`
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(data, &e) == nil && len(e.Errors) > 0 {
			return nil, fmt.Errorf("registry: %s: %s (HTTP %d)", e.Errors[0].Code, e.Errors[0].Message, resp.StatusCode)
		}
		return nil, fmt.Errorf("registry: GET %s: HTTP %d", path, resp.StatusCode)
	}
	return resp.Body, nil
}

// humanBytes renders n bytes as B, kB, MB or GB.
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// shortCommit is the first 10 characters of a commit.
func shortCommit(c string) string {
	if len(c) > 10 {
		return c[:10]
	}
	return c
}
