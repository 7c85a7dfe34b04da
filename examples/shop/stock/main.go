// Command stock is the example shop's stock service: a REST API telling how many of a
// product are in the warehouse.
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
)

var counts = map[string]int{"tea": 120, "mug": 14, "pot": 3}

func routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /stock/{id}", func(w http.ResponseWriter, r *http.Request) {
		n, ok := counts[r.PathValue("id")]
		if !ok {
			http.Error(w, "unknown product", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": r.PathValue("id"), "count": n})
	})
	return mux
}

func main() {
	addr := "127.0.0.1:" + os.Getenv("PORT")
	log.Printf("stock listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, routes()))
}
