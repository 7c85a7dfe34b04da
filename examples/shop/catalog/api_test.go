//go:build apitest

package main

import (
	"encoding/json"
	"net/http"
	"os"
	"testing"
)

// TestAPI checks a running catalog at $CATALOG_URL (the pipeline's api-test step runs it
// against an ephemeral environment, with the environment's CATALOG_API_KEY).
func TestAPI(t *testing.T) {
	req, _ := http.NewRequest("GET", os.Getenv("CATALOG_URL")+"/products", nil)
	req.Header.Set("X-Api-Key", os.Getenv("CATALOG_API_KEY"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []Product
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 || len(got) == 0 {
		t.Fatalf("GET /products: %d %v %v", resp.StatusCode, err, got)
	}
}

// TestAPIRefusesStrangers checks the running catalog wants the key.
func TestAPIRefusesStrangers(t *testing.T) {
	resp, err := http.Get(os.Getenv("CATALOG_URL") + "/products")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /products without a key: %d, want 401", resp.StatusCode)
	}
}
