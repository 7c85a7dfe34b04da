package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeBackends serves what the catalog and stock services answer.
func fakeBackends(t *testing.T) (catalog, stock string) {
	t.Helper()
	c := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "key-1234" {
			http.Error(w, "no key", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`[{"id":"mug","name":"Stoneware mug","price_cents":1200}]`))
	}))
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"id":"mug","count":14}`))
	}))
	t.Cleanup(c.Close)
	t.Cleanup(s.Close)
	return c.URL, s.URL
}

func TestPageShowsProductsWithStock(t *testing.T) {
	catalog, stock := fakeBackends(t)
	rec := httptest.NewRecorder()
	routes(catalog, "key-1234", stock, "staging").ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, "Stoneware mug") || !strings.Contains(body, "12.00 €") || !strings.Contains(body, "<td>14</td>") {
		t.Errorf("page: %d\n%s", rec.Code, body)
	}
}

func TestPageSaysWhenABackEndIsDown(t *testing.T) {
	rec := httptest.NewRecorder()
	routes("http://127.0.0.1:1", "key-1234", "http://127.0.0.1:1", "staging").ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "catalog") {
		t.Errorf("page with the catalog down: %d %s", rec.Code, rec.Body)
	}
}

func TestPageSaysWhenTheCatalogRefusesTheKey(t *testing.T) {
	catalog, stock := fakeBackends(t)
	rec := httptest.NewRecorder()
	routes(catalog, "wrong-key", stock, "staging").ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "401") {
		t.Errorf("page with a wrong key: %d %s", rec.Code, rec.Body)
	}
}
