//go:build apitest

package main

import (
	"net/http"
	"os"
	"testing"
)

// TestAPI checks a running stock service at $STOCK_URL.
func TestAPI(t *testing.T) {
	resp, err := http.Get(os.Getenv("STOCK_URL") + "/stock/tea")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /stock/tea: %d", resp.StatusCode)
	}
}
