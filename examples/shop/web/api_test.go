//go:build apitest

package main

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestAPI checks the running front end at $WEB_URL shows data from both back ends.
func TestAPI(t *testing.T) {
	resp, err := http.Get(os.Getenv("WEB_URL") + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Cast-iron teapot") || !strings.Contains(string(body), "<td>3</td>") {
		t.Fatalf("GET /: %d\n%s", resp.StatusCode, body)
	}
}
