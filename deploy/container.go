package deploy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/docker/go-units"

	"github.com/drover-cd/drover/runtime"
)

// containerSpec fills in what the docker runtime needs: the image (service.image, where
// self or nothing means the image the release's run built), the alias other services
// reach it by, and the resource limits.
func (s *service) containerSpec(spec *runtime.Spec, t *target) error {
	img := t.service.Image
	if img == "" || img == "self" {
		if t.rel.Image == "" {
			return fmt.Errorf("%s of %s cannot run as a container: its run built no image (add a build: step) and service.image names none: %w",
				s.name, t.rel.Tag, ErrBadRequest)
		}
		img = s.m.cfg.ImageRef(t.rel.Image)
	}
	spec.Image = img
	spec.Aliases = []string{alias(s.name, s.env)}
	if c := t.service.Resources.CPU; c != "" {
		cpus, err := strconv.ParseFloat(c, 64)
		if err != nil || cpus <= 0 {
			return fmt.Errorf("service.resources.cpu %q is not a number of CPUs like 0.5 or 2: %w", c, ErrBadRequest)
		}
		spec.CPUs = cpus
	}
	if m := t.service.Resources.Memory; m != "" {
		bytes, err := units.RAMInBytes(m)
		if err != nil || bytes <= 0 {
			return fmt.Errorf("service.resources.memory %q is not a size like 256m or 1g: %w", m, ErrBadRequest)
		}
		spec.Memory = bytes
	}
	return nil
}

// runtimeOf is where env's services run: its runtime: from environments.yml (an
// ephemeral environment's is its base's), else the server's default.
func (m *Manager) runtimeOf(env string) string {
	env = m.scopeOf(env)
	if m.cfg.Store != nil { // unit tests of the deploy mechanics run without one
		if e, err := m.cfg.Store.Environment(m.ctx, env); err == nil && e.Runtime != "" {
			return e.Runtime
		}
	}
	if m.cfg.DefaultRuntime == "" {
		return RuntimeProcess
	}
	return m.cfg.DefaultRuntime
}

// alias is the name a service's containers have in an environment: SERVICE.ENV.
func alias(service, env string) string {
	return strings.ToLower(service + "." + env)
}
