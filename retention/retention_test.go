package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-cd/drover/registry"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// runTags returns the tags a run publishes: its number, its release tag and
// its commit, all naming one manifest created age ago.
func runTags(project string, n int, age time.Duration) []registry.TagInfo {
	ann := map[string]string{
		AnnotationRun:             strconv.Itoa(n),
		ocispec.AnnotationCreated: now.Add(-age).Format(time.RFC3339),
	}
	if project != "" {
		ann[AnnotationProject] = project
	}
	d := digest.FromString(project + strconv.Itoa(n))
	var out []registry.TagInfo
	for _, tag := range []string{strconv.Itoa(n), "r" + strconv.Itoa(n), "c0ffee" + strconv.Itoa(n)} {
		out = append(out, registry.TagInfo{Tag: tag, Digest: d, Annotations: ann, Modified: now})
	}
	return out
}

func join(parts ...[]registry.TagInfo) []registry.TagInfo {
	var out []registry.TagInfo
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func tagsOf(runs ...int) []string {
	var out []string
	for _, n := range runs {
		s := strconv.Itoa(n)
		out = append(out, s, "c0ffee"+s, "r"+s)
	}
	slices.Sort(out)
	return out
}

func TestSelect(t *testing.T) {
	day := 24 * time.Hour
	five := join(runTags("app", 1, 50*day), runTags("app", 2, 40*day), runTags("app", 3, 30*day), runTags("app", 4, 20*day), runTags("app", 5, 10*day))
	userImage := registry.TagInfo{Tag: "latest", Digest: digest.FromString("user"), Annotations: map[string]string{"org.opencontainers.image.title": "mine"}, Modified: now.Add(-400 * day)}
	noAnnotations := registry.TagInfo{Tag: "old", Digest: digest.FromString("bare"), Modified: now.Add(-400 * day)}
	badRun := registry.TagInfo{Tag: "weird", Annotations: map[string]string{AnnotationRun: "twelve"}, Modified: now.Add(-400 * day)}
	// A run without a created annotation: the tag's push time counts.
	noCreated := runTags("app", 6, 0)
	for i := range noCreated {
		noCreated[i].Annotations = map[string]string{AnnotationRun: "6"}
		noCreated[i].Modified = now.Add(-2 * day)
	}

	for _, tc := range []struct {
		name   string
		policy Policy
		tags   []registry.TagInfo
		want   []string
	}{
		{"zero policy prunes every run", Policy{}, five, tagsOf(1, 2, 3, 4, 5)},
		{"keep last two runs", Policy{KeepRuns: 2}, five, tagsOf(1, 2, 3)},
		{"keep more runs than there are", Policy{KeepRuns: 10}, five, nil},
		{"keep runs younger than 25 days", Policy{KeepFor: 25 * 24 * time.Hour}, five, tagsOf(1, 2, 3)},
		{"age or count", Policy{KeepRuns: 1, KeepFor: 35 * 24 * time.Hour}, five, tagsOf(1, 2)},
		{"deployed runs stay", Policy{KeepRuns: 1, Deployed: func(p string, n int) bool { return p == "app" && (n == 1 || n == 3) }}, five, tagsOf(2, 4)},
		{"run numbers, not tag order, decide", Policy{KeepRuns: 2}, join(runTags("app", 10, 50*day), runTags("app", 9, 50*day), runTags("app", 100, 50*day)), tagsOf(9)},
		{"not run artifacts are never pruned", Policy{}, []registry.TagInfo{userImage, noAnnotations, badRun}, nil},
		{"tag push time when created is missing", Policy{KeepFor: 3 * day}, join(runTags("app", 1, 10*day), noCreated), tagsOf(1)},
		{"project from the repository name", Policy{Deployed: func(p string, n int) bool { return p == "repo" && n == 1 }}, join(runTags("", 1, 10*day), runTags("", 2, 10*day)), tagsOf(2)},
		{"last runs counted per project", Policy{KeepRuns: 1}, join(runTags("a", 1, 10*day), runTags("a", 2, 10*day), runTags("b", 1, 10*day)), []string{"1", "c0ffee1", "r1"}},
		{"empty repository", Policy{KeepRuns: 3}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.policy.Select("repo", tc.tags, now)
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("pruned %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPruneWithRegistry runs a collection with a policy: the old runs go,
// release tags included, the kept runs and a user's image stay.
func TestPruneWithRegistry(t *testing.T) {
	ctx := context.Background()
	reg, err := registry.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg.Immutable = func(repo, tag string) bool { return tag[0] == 'r' }
	push := func(tag string, ann map[string]string, content string) {
		t.Helper()
		blobs := [][]byte{[]byte("{}"), []byte(content)}
		for _, b := range blobs {
			if err := reg.PushBlob(ctx, "proj", digest.FromBytes(b), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }); err != nil {
				t.Fatal(err)
			}
		}
		m, _ := json.Marshal(ocispec.Manifest{
			Versioned:   specs.Versioned{SchemaVersion: 2},
			MediaType:   ocispec.MediaTypeImageManifest,
			Config:      ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: digest.FromBytes(blobs[0]), Size: 2},
			Layers:      []ocispec.Descriptor{{MediaType: "application/octet-stream", Digest: digest.FromBytes(blobs[1]), Size: int64(len(blobs[1]))}},
			Annotations: ann,
		})
		if _, err := reg.PushManifest(ctx, "proj", tag, ocispec.MediaTypeImageManifest, m); err != nil {
			t.Fatal(err)
		}
	}
	for n := 1; n <= 4; n++ {
		ann := map[string]string{AnnotationProject: "Proj", AnnotationRun: strconv.Itoa(n), ocispec.AnnotationCreated: time.Now().Add(-90 * 24 * time.Hour).Format(time.RFC3339)}
		push(strconv.Itoa(n), ann, "artifact "+strconv.Itoa(n))
		push("r"+strconv.Itoa(n), ann, "artifact "+strconv.Itoa(n))
	}
	push("latest", map[string]string{"org.example": "user image"}, "user layer")

	policy := Policy{KeepRuns: 2, Deployed: func(project string, run int) bool { return project == "Proj" && run == 1 }}
	rep, err := reg.GC(ctx, registry.GCOptions{Prune: policy.Prune(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"proj:2", "proj:r2"}; !reflect.DeepEqual(rep.TagsRemoved, want) {
		t.Fatalf("tags removed %v, want %v", rep.TagsRemoved, want)
	}
	tags, err := reg.Tags("proj")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"1", "3", "4", "latest", "r1", "r3", "r4"}; !reflect.DeepEqual(tags, want) {
		t.Fatalf("tags %v, want %v", tags, want)
	}
}
