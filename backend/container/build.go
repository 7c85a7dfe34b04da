package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/drover-cd/drover/docker"
	"github.com/drover-cd/drover/engine"
)

// build runs a build: step: it builds the context with the engine's layer cache, labels
// the image with the run's facts, pushes it to spec.ImageRef in Drover's registry (and
// the step's tags: beside it) and reports it through spec.Built.
func (b *Backend) build(ctx context.Context, e *docker.Engine, spec *engine.Spec, out io.Writer) (int, error) {
	bs := spec.Step.Build
	dir, err := contextDir(spec.Dir, bs.Context)
	if err != nil {
		return -1, err
	}
	reg := e.Registry()
	if spec.ImageRef != "" && reg.Host == "" {
		return -1, errors.New("build: this run pushes its image to Drover's registry, but the engine was given no registry address")
	}
	var tags, push []string
	repo, run, _ := strings.Cut(spec.ImageRef, ":")
	if spec.ImageRef != "" {
		tags = append(tags, reg.Host+"/"+spec.ImageRef)
		for _, t := range bs.Tags {
			tags = append(tags, reg.Host+"/"+repo+":"+t)
		}
		push = tags
	} else {
		tags = append(tags, bs.Tags...) // kept on this machine, under the names given
	}

	b.hold(tags, 1)
	defer b.hold(tags, -1)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(docker.TarLabelledContext(dir, bs.Dockerfile, imageLabels(spec), pw)) }()
	defer pr.Close()
	fmt.Fprintf(out, "building %s (dockerfile %s)\n", bs.Context, bs.Dockerfile)
	id, err := e.Build(ctx, docker.BuildSpec{Context: pr, Dockerfile: bs.Dockerfile, Tags: tags}, out)
	switch {
	case ctx.Err() != nil:
		return -1, context.Cause(ctx)
	case err != nil:
		// The Dockerfile's fault, not Drover's: the step fails with the builder's words.
		fmt.Fprintln(out, err)
		return 1, nil
	}
	fmt.Fprintf(out, "built %s\n", id)
	if len(push) == 0 {
		spec.Built(id)
		return 0, nil
	}
	var digest string
	for i, ref := range push {
		fmt.Fprintf(out, "pushing %s\n", ref)
		d, err := e.Push(ctx, ref, io.Discard)
		if err != nil {
			if ctx.Err() != nil {
				return -1, context.Cause(ctx)
			}
			return -1, err
		}
		if i == 0 {
			digest = d
		}
	}
	fmt.Fprintf(out, "pushed %s/%s@%s\n", reg.Host, repo, digest)
	b.untagOlder(ctx, e, reg.Host+"/"+repo+":", run, out)
	spec.Built(repo + "@" + digest)
	return 0, nil
}

// hold counts refs as being built and pushed (by +1) or done with (-1): untagOlder
// leaves them alone.
func (b *Backend) hold(refs []string, by int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.building == nil {
		b.building = map[string]int{}
	}
	for _, r := range refs {
		if b.building[r] += by; b.building[r] <= 0 {
			delete(b.building, r)
		}
	}
}

// untagOlder removes from the engine the run-number tags under prefix (HOST/REPO:)
// below run that no build in progress holds: earlier runs' images, which the registry
// keeps. The layers the new image shares stay, so the builder's cache does too; an
// image a container still uses stays until the container goes. Other tags (latest)
// move with each build and are left alone.
func (b *Backend) untagOlder(ctx context.Context, e *docker.Engine, prefix, run string, out io.Writer) {
	newest, err := strconv.Atoi(run)
	if err != nil {
		return
	}
	n, err := e.UntagWhere(ctx, func(tag string) bool {
		older, err := strconv.Atoi(strings.TrimPrefix(tag, prefix))
		if !strings.HasPrefix(tag, prefix) || err != nil || older >= newest {
			return false
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.building[tag] == 0
	})
	if n > 0 {
		fmt.Fprintf(out, "removed %d earlier builds from this machine (the registry keeps them)\n", n)
	}
	if err != nil {
		fmt.Fprintf(out, "could not remove every earlier build from this machine: %v\n", err)
	}
}

// imageLabels are the run's facts on the image, as on the run's artifact manifest.
func imageLabels(spec *engine.Spec) map[string]string {
	l := map[string]string{}
	for _, kv := range spec.Env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "DROVER_COMMIT":
			l["org.opencontainers.image.revision"] = v
		case "DROVER_RUN":
			l["dev.drover.run"] = v
		case "DROVER_BRANCH":
			l["dev.drover.branch"] = v
		}
	}
	for k, v := range spec.Annotations {
		l[k] = v
	}
	return l
}
