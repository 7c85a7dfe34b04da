package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// Image makes sure the engine has ref and returns the reference to create containers
// from. In order: an image this machine has under ref; for a short name such as
// busybox:1.36 (no registry host), the same name in the built-in registry; ref pulled as
// written. Pull progress goes to out, one line per layer event worth reading.
func (e *Engine) Image(ctx context.Context, ref string, out io.Writer) (string, error) {
	if ok, err := e.HasImage(ctx, ref); err != nil || ok {
		return ref, err
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	short := reference.Domain(named) == "docker.io" && !strings.HasPrefix(ref, "docker.io/")
	if short && e.registry.Host != "" {
		local := e.registry.Host + "/" + reference.FamiliarString(reference.TagNameOnly(named))
		if err := e.Pull(ctx, local, out); err == nil {
			return local, nil
		} else if !client.IsErrNotFound(err) && !strings.Contains(err.Error(), "not found") && !strings.Contains(err.Error(), "unknown") {
			return "", err
		}
		return "", fmt.Errorf("image %s is neither on this machine nor in Drover's registry (%s): push it there first, e.g. docker tag %s %s && docker push %s", ref, e.registry.Host, ref, local, local)
	}
	if err := e.Pull(ctx, ref, out); err != nil {
		return "", err
	}
	return ref, nil
}

// HasImage reports whether the engine has an image of that reference or id.
func (e *Engine) HasImage(ctx context.Context, ref string) (bool, error) {
	_, err := e.api.ImageInspect(ctx, ref)
	switch {
	case client.IsErrNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return true, nil
}

// Parent returns the id of the image ref was built on: with the classic builder, the
// one the Dockerfile's step before the last made; "" for none.
func (e *Engine) Parent(ctx context.Context, ref string) (string, error) {
	img, err := e.api.ImageInspect(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return img.Parent, nil
}

// Pull pulls ref, signing in to the built-in registry when ref is in it.
func (e *Engine) Pull(ctx context.Context, ref string, out io.Writer) error {
	rc, err := e.api.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: e.auth(ref)})
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	defer rc.Close()
	if _, err := readMessages(rc, out, false); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return nil
}

// BuildSpec is an image build.
type BuildSpec struct {
	Context    io.Reader // a tar of the build context (see TarContext)
	Dockerfile string    // path inside the context
	Tags       []string  // full references to tag the image with
	Labels     map[string]string
}

// Build builds an image with the engine's layer cache, streaming the builder's output to
// out, and returns the image's id (sha256:...).
func (e *Engine) Build(ctx context.Context, b BuildSpec, out io.Writer) (string, error) {
	resp, err := e.api.ImageBuild(ctx, b.Context, build.ImageBuildOptions{
		Tags: b.Tags, Dockerfile: b.Dockerfile, Labels: b.Labels, Remove: true, ForceRemove: true,
		// The classic builder needs no session, so it works through the plain API on
		// every engine; it keeps its own layer cache.
		Version: build.BuilderV1,
	})
	if err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	defer resp.Body.Close()
	aux, err := readMessages(resp.Body, out, true)
	if err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	var id struct{ ID string }
	for _, a := range aux {
		if json.Unmarshal(a, &id) == nil && id.ID != "" {
			return id.ID, nil
		}
	}
	if len(b.Tags) > 0 {
		img, err := e.api.ImageInspect(ctx, b.Tags[0])
		if err == nil {
			return img.ID, nil
		}
	}
	return "", errors.New("build: the engine did not say which image it built")
}

// Tag gives the image src the reference dst.
func (e *Engine) Tag(ctx context.Context, src, dst string) error {
	if err := e.api.ImageTag(ctx, src, dst); err != nil {
		return fmt.Errorf("tag %s as %s: %w", src, dst, err)
	}
	return nil
}

// Untag removes the reference ref; the image stays while other references hold it.
// An image that goes takes with it its untagged parents that no other image shares
// (the classic builder's intermediate images, which hold the layers).
func (e *Engine) Untag(ctx context.Context, ref string) error {
	if _, err := e.api.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true}); err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	return nil
}

// UntagUnder removes every reference that starts with prefix (e.g. a registry's
// "HOST/"), and returns how many it removed.
func (e *Engine) UntagUnder(ctx context.Context, prefix string) (int, error) {
	return e.UntagWhere(ctx, func(tag string) bool { return strings.HasPrefix(tag, prefix) })
}

// UntagWhere removes every tag (HOST/REPO:TAG) that which accepts and returns how many
// it removed. An image whose last tag goes is deleted, and one a container uses keeps
// its last tag.
func (e *Engine) UntagWhere(ctx context.Context, which func(tag string) bool) (int, error) {
	list, err := e.api.ImageList(ctx, image.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("list images: %w", err)
	}
	n := 0
	var errs []error
	for _, img := range list {
		for _, tag := range img.RepoTags {
			if which(tag) {
				if err := e.Untag(ctx, tag); cerrdefs.IsConflict(err) {
					continue // in use
				} else if err != nil {
					errs = append(errs, err)
					continue
				}
				n++
			}
		}
	}
	return n, errors.Join(errs...)
}

// Push pushes ref and returns the digest of the manifest the registry stored.
func (e *Engine) Push(ctx context.Context, ref string, out io.Writer) (string, error) {
	rc, err := e.api.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: e.auth(ref)})
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	defer rc.Close()
	aux, err := readMessages(rc, out, false)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	var pushed struct{ Digest string }
	for _, a := range aux {
		if json.Unmarshal(a, &pushed) == nil && pushed.Digest != "" {
			return pushed.Digest, nil
		}
	}
	return "", fmt.Errorf("push %s: the engine did not report the digest", ref)
}

// readMessages reads the engine's JSON progress stream. With stream set, builder output
// goes to out as is; otherwise one line per status that is not a progress tick. It
// returns the aux payloads and the first error the stream reported.
func readMessages(r io.Reader, out io.Writer, stream bool) ([]json.RawMessage, error) {
	dec := json.NewDecoder(r)
	var aux []json.RawMessage
	for {
		var m message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return aux, nil
		} else if err != nil {
			return aux, fmt.Errorf("read the engine's progress: %w", err)
		}
		switch {
		case m.Error != nil && m.Error.Message != "":
			return aux, errors.New(strings.TrimSpace(m.Error.Message))
		case m.ErrorMessage != "":
			return aux, errors.New(strings.TrimSpace(m.ErrorMessage))
		case m.Aux != nil:
			aux = append(aux, *m.Aux)
		case stream && m.Stream != "":
			io.WriteString(out, m.Stream)
		case m.Status != "" && m.Progress == nil || m.Status != "" && m.Progress.Total == 0 && m.Progress.Current == 0:
			if m.ID != "" {
				fmt.Fprintf(out, "%s: %s\n", m.ID, m.Status)
			} else {
				fmt.Fprintln(out, m.Status)
			}
		}
	}
}

// message is one object of the engine's progress stream.
type message struct {
	Stream   string `json:"stream"`
	Status   string `json:"status"`
	ID       string `json:"id"`
	Progress *struct {
		Current, Total int64
	} `json:"progressDetail"`
	Error *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	ErrorMessage string           `json:"error"`
	Aux          *json.RawMessage `json:"aux"`
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
