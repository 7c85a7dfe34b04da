// Package retention decides which of a project's run artifacts the built-in
// registry may forget. Drover runs publish their artifact to the repository
// named after the project, tagged with the run number, the release tag r<run>
// and the commit; a Policy keeps the newest runs, the recent ones and the
// deployed releases, and its Prune function, given to registry garbage
// collection, names the tags of every other run. Tags of manifests that are
// not run artifacts (images users pushed) are never pruned.
package retention

import (
	"cmp"
	"slices"
	"strconv"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/registry"
)

// Annotations of a run artifact's manifest that retention reads.
const (
	AnnotationProject = "dev.drover.project" // the project's name
	AnnotationRun     = "dev.drover.run"     // the run number, in decimal
)

// Policy says which runs of a project to keep. A run is kept when any of its
// rules holds; the zero Policy keeps none.
type Policy struct {
	// KeepRuns keeps the runs with the KeepRuns highest run numbers of each
	// project in a repository.
	KeepRuns int
	// KeepFor keeps runs younger than this: created (the
	// org.opencontainers.image.created annotation, else the time the tag was
	// pushed) less than KeepFor ago.
	KeepFor time.Duration
	// Deployed reports the runs whose release is or was deployed; they are
	// kept. Nil means none.
	Deployed func(project string, run int) bool
}

// Prune returns the function for registry.GCOptions.Prune, measuring ages
// at now.
func (p Policy) Prune(now time.Time) func(repo string, tags []registry.TagInfo) []string {
	return func(repo string, tags []registry.TagInfo) []string { return p.Select(repo, tags, now) }
}

// run is what Select knows about one run.
type run struct {
	project string
	number  int
	created time.Time // of its newest tag
	tags    []string
}

// Select returns, in lexical order, the tags of repository repo to delete:
// every tag of each run artifact whose run the policy does not keep. Runs
// are told apart by project (the dev.drover.project annotation, else the
// repository) and run number.
func (p Policy) Select(repo string, tags []registry.TagInfo, now time.Time) []string {
	type key struct {
		project string
		number  int
	}
	runs := map[key]*run{}
	for _, t := range tags {
		n, err := strconv.Atoi(t.Annotations[AnnotationRun])
		if err != nil || n < 0 {
			continue // not a run artifact
		}
		k := key{t.Annotations[AnnotationProject], n}
		if k.project == "" {
			k.project = repo
		}
		created, err := time.Parse(time.RFC3339, t.Annotations[ocispec.AnnotationCreated])
		if err != nil {
			created = t.Modified
		}
		r := runs[k]
		if r == nil {
			r = &run{project: k.project, number: n}
			runs[k] = r
		}
		r.tags = append(r.tags, t.Tag)
		if created.After(r.created) {
			r.created = created
		}
	}

	byProject := map[string][]*run{}
	for _, r := range runs {
		byProject[r.project] = append(byProject[r.project], r)
	}
	var prune []string
	for _, rs := range byProject {
		slices.SortFunc(rs, func(a, b *run) int { return cmp.Compare(b.number, a.number) })
		for i, r := range rs {
			if i < p.KeepRuns || (p.KeepFor > 0 && now.Sub(r.created) < p.KeepFor) || (p.Deployed != nil && p.Deployed(r.project, r.number)) {
				continue
			}
			prune = append(prune, r.tags...)
		}
	}
	slices.Sort(prune)
	return prune
}
