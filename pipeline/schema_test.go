package pipeline

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// The schema is generated from the parser's field tables, so names cannot drift; these
// tests keep the types in step: a value shaped as the schema says is accepted by the
// parser, and a value of another shape is rejected, for every field of a step.
func TestSchemaMatchesTheParser(t *testing.T) {
	raw, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	// The published copy at the repository root is what editors point at.
	golden(t, "../../drover.schema.json", string(raw))
	var s map[string]any
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	props := s["properties"].(map[string]any)
	step := props["steps"].(map[string]any)["items"].(map[string]any)["properties"].(map[string]any)
	for _, name := range sortedKeys(step) {
		t.Run("steps."+name, func(t *testing.T) {
			fs := step[name].(map[string]any)
			base := "name: s\n    run: x\n"
			if name == "name" || name == "run" || name == "deploy" || name == "approval" || name == "build" {
				base = "name: s\n"
			}
			if name == "name" {
				base = "run: x\n"
			}
			value := sample(fs)
			if name == "needs" {
				value = "[]" // any other name would have to be a step
			}
			good := fmt.Sprintf("steps:\n  - %s    %s: %s\n", base, name, value)
			if _, err := Parse("drover.yml", []byte(good)); err != nil {
				t.Errorf("a value the schema allows is rejected:\n%s\n%v", good, err)
			}
			bad := fmt.Sprintf("steps:\n  - %s    %s: %s\n", base, name, wrong(fs))
			if _, err := Parse("drover.yml", []byte(bad)); err == nil {
				t.Errorf("a value the schema forbids is accepted:\n%s", bad)
			}
		})
	}
	for _, name := range []string{"env", "auto_cancel", "service"} {
		fs := props[name].(map[string]any)
		good := fmt.Sprintf("%s: %s\nsteps: [{name: s, run: x}]\n", name, sample(fs))
		if _, err := Parse("drover.yml", []byte(good)); err != nil {
			t.Errorf("top-level %s: a value the schema allows is rejected:\n%s\n%v", name, good, err)
		}
	}
}

// sample writes a YAML flow value that the schema fragment s allows.
func sample(s map[string]any) string {
	if alts, ok := s["anyOf"].([]any); ok {
		return sample(alts[len(alts)-1].(map[string]any))
	}
	if enum, ok := s["enum"].([]any); ok {
		return fmt.Sprint(enum[0])
	}
	if ex, ok := s["examples"].([]any); ok {
		return fmt.Sprint(ex[0])
	}
	if p, ok := s["pattern"].(string); ok {
		if p == secretName.String() {
			return "DB_PASSWORD"
		}
		return "90s" // the other patterned strings are durations
	}
	typ := s["type"]
	if list, ok := typ.([]any); ok {
		typ = list[0]
	}
	switch typ {
	case "string":
		return "x"
	case "boolean":
		return "true"
	case "integer", "number":
		return fmt.Sprint(s["minimum"])
	case "array":
		return "[" + sample(s["items"].(map[string]any)) + "]"
	case "object":
		if props, ok := s["properties"].(map[string]any); ok {
			var parts []string
			for _, k := range sortedKeys(props) {
				parts = append(parts, k+": "+sample(props[k].(map[string]any)))
			}
			return "{" + strings.Join(parts, ", ") + "}"
		}
		return "{A: " + sample(s["additionalProperties"].(map[string]any)) + "}"
	}
	panic(fmt.Sprintf("no sample for %v", s))
}

// wrong writes a YAML value of a shape the schema fragment s does not allow.
func wrong(s map[string]any) string {
	if _, ok := s["anyOf"]; ok {
		return "{not: allowed}"
	}
	switch s["type"] {
	case "object":
		return "[a, b]"
	case "array", "string":
		return "{not: allowed}"
	}
	return "not-a-" + fmt.Sprint(s["type"])
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
