package main

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStock(t *testing.T) {
	for path, want := range map[string]int{"/stock/pot": 200, "/stock/sofa": 404, "/healthz": 200} {
		rec := httptest.NewRecorder()
		routes().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
		}
		if path == "/stock/pot" && !strings.Contains(rec.Body.String(), `"count":3`) {
			t.Errorf("GET %s: %s", path, rec.Body)
		}
	}
}
