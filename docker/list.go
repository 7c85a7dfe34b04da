package docker

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// Containers returns the ids of the containers, running or not, that this Engine's owner
// created and that carry every label in match (nil: all of them).
func (e *Engine) Containers(ctx context.Context, match map[string]string) ([]string, error) {
	args := filters.NewArgs(filters.Arg("label", LabelOwner+"="+e.owner))
	for k, v := range match {
		args.Add("label", k+"="+v)
	}
	list, err := e.api.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	ids := make([]string, 0, len(list))
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	return ids, nil
}
