package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

const key = "test-key-1234"

// get requests path with the API key.
func get(path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("X-Api-Key", key)
	routes(key).ServeHTTP(rec, req)
	return rec
}

func TestProducts(t *testing.T) {
	rec := get("/products")
	var got []Product
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got) != 3 {
		t.Fatalf("GET /products: %d %v %s", rec.Code, err, rec.Body)
	}
}

func TestOneProduct(t *testing.T) {
	for id, want := range map[string]int{"mug": http.StatusOK, "sofa": http.StatusNotFound} {
		rec := get("/products/" + id)
		if rec.Code != want {
			t.Errorf("GET /products/%s: %d, want %d", id, rec.Code, want)
		}
	}
	rec := httptest.NewRecorder()
	routes(key).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("healthz: %d", rec.Code)
	}
}

func TestTheAPIWantsTheKey(t *testing.T) {
	for _, given := range []string{"", "wrong-key-1234"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/products", nil)
		if given != "" {
			req.Header.Set("X-Api-Key", given)
		}
		routes(key).ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("key %q: %d, want 401", given, rec.Code)
		}
	}
	rec := httptest.NewRecorder()
	routes("").ServeHTTP(rec, httptest.NewRequest("GET", "/products", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("a catalog without a key answered %d, want 401", rec.Code)
	}
}
