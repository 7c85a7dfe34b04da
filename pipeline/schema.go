package pipeline

import (
	"encoding/json"
	"fmt"
)

// schema is a JSON Schema fragment.
type schema = map[string]any

// Schema returns the JSON Schema (draft 2020-12) of drover.yml, built from the same field
// tables the parser uses. Editors use it through the YAML language server.
func Schema() ([]byte, error) {
	s := objectSchema(pipelineFields())
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://drover.dev/schema/drover.json"
	s["title"] = "drover.yml"
	s["description"] = "A Drover pipeline: how a project is tested, built, published and deployed."
	s["required"] = []string{"steps"}
	s["patternProperties"] = schema{`^(\.|x-)`: schema{"description": "Templates for YAML anchors; ignored."}}
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode schema: %w", err)
	}
	return append(out, '\n'), nil
}

// objectSchema describes a mapping decoded with fields; unknown keys are errors.
func objectSchema[T any](fields []field[T]) schema {
	props := schema{}
	for _, f := range fields {
		p := f.schema()
		p["description"] = f.doc
		props[f.name] = p
	}
	return schema{"type": "object", "properties": props, "additionalProperties": false}
}

func stringSchema() schema  { return schema{"type": "string"} }
func booleanSchema() schema { return schema{"type": "boolean"} }

func integerSchema(lo, hi int) func() schema {
	return func() schema { return schema{"type": "integer", "minimum": lo, "maximum": hi} }
}

func numberSchema(lo, hi float64) func() schema {
	return func() schema { return schema{"type": "number", "minimum": lo, "maximum": hi} }
}

func durationSchema() schema {
	return schema{"type": "string", "pattern": `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h|d))+$`}
}

func stringListSchema() schema {
	return schema{"type": "array", "items": schema{"type": "string"}}
}

// secretsSchema is a list of secrets' names.
func secretsSchema() schema {
	return schema{"type": "array", "uniqueItems": true, "items": schema{"type": "string", "pattern": secretName.String()}}
}

// stringOrListSchema is a string, or a list of strings.
func stringOrListSchema() schema {
	return schema{"anyOf": []schema{{"type": "string"}, stringListSchema()}}
}

func enumSchema(values ...string) func() schema {
	return func() schema {
		one := schema{"type": "string", "enum": values}
		return schema{"anyOf": []schema{one, {"type": "array", "items": one}}}
	}
}

func envSchema() schema {
	return schema{
		"type":          "object",
		"propertyNames": schema{"pattern": envName.String()},
		"additionalProperties": schema{
			"type": []string{"string", "number", "boolean", "null"},
		},
	}
}
