//go:build apitest

package main

import (
	"encoding/json"
	"net/http"
	"os"
	"testing"
)

// TestAPI checks a running catalog at $CATALOG_URL (the pipeline's api-test step runs it
// against an ephemeral environment).
func TestAPI(t *testing.T) {
	resp, err := http.Get(os.Getenv("CATALOG_URL") + "/products")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []Product
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 || len(got) == 0 {
		t.Fatalf("GET /products: %d %v %v", resp.StatusCode, err, got)
	}
}
