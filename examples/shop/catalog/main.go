// Command catalog is the example shop's product catalog: a REST API listing products.
// Callers present the key in CATALOG_API_KEY (a secret Drover gives the catalog and the
// web front end, different in each environment) as the X-Api-Key header.
package main

import (
	"crypto/subtle"
	"encoding/json"
	"log"
	"net/http"
	"os"
)

// Product is one thing the shop sells.
type Product struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Price int    `json:"price_cents"`
}

var products = []Product{
	{ID: "tea", Name: "Green tea", Price: 450},
	{ID: "mug", Name: "Stoneware mug", Price: 1200},
	{ID: "pot", Name: "Cast-iron teapot", Price: 4800},
}

// routes serves the API to callers presenting key.
func routes(key string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /products", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(products)
	})
	mux.HandleFunc("GET /products/{id}", func(w http.ResponseWriter, r *http.Request) {
		for _, p := range products {
			if p.ID == r.PathValue("id") {
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(p)
				return
			}
		}
		http.Error(w, "no such product", http.StatusNotFound)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given := r.Header.Get("X-Api-Key")
		if r.URL.Path != "/healthz" && (key == "" || subtle.ConstantTimeCompare([]byte(given), []byte(key)) != 1) {
			http.Error(w, "a valid X-Api-Key is required", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func main() {
	addr := "127.0.0.1:" + os.Getenv("PORT")
	log.Printf("catalog listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, routes(os.Getenv("CATALOG_API_KEY"))))
}
