package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestProducts(t *testing.T) {
	rec := httptest.NewRecorder()
	routes().ServeHTTP(rec, httptest.NewRequest("GET", "/products", nil))
	var got []Product
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got) != 3 {
		t.Fatalf("GET /products: %d %v %s", rec.Code, err, rec.Body)
	}
}

func TestOneProduct(t *testing.T) {
	for id, want := range map[string]int{"mug": http.StatusOK, "sofa": http.StatusNotFound} {
		rec := httptest.NewRecorder()
		routes().ServeHTTP(rec, httptest.NewRequest("GET", "/products/"+id, nil))
		if rec.Code != want {
			t.Errorf("GET /products/%s: %d, want %d", id, rec.Code, want)
		}
	}
	rec := httptest.NewRecorder()
	routes().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("healthz: %d", rec.Code)
	}
}
