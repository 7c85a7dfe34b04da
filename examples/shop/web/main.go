// Command web is the example shop's front end: a page listing the catalog's products with
// the stock service's counts. It finds both through CATALOG_URL and STOCK_URL, which
// Drover sets for the services it requires, and presents the catalog its key,
// CATALOG_API_KEY, a secret Drover gives both.
package main

import (
	"encoding/json"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"os"
	"time"
)

type product struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Price int    `json:"price_cents"`
	Stock int
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"div": func(c int) int { return c / 100 },
	"mod": func(c int) int { return c % 100 },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drover tea shop</title></head>
<body><h1>Drover tea shop</h1><p>{{.Env}}</p>
<table><tr><th>Product</th><th>Price</th><th>In stock</th></tr>
{{range .Products}}<tr class="product" data-id="{{.ID}}"><td>{{.Name}}</td><td>{{printf "%d.%02d" (div .Price) (mod .Price)}} €</td><td>{{.Stock}}</td></tr>
{{end}}</table></body></html>
`))

var client = &http.Client{Timeout: 3 * time.Second}

// getJSON fetches url with the headers in header.
func getJSON(url string, header http.Header, v any) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	req.Header = header
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// products fetches the catalog, presenting key, and every product's stock.
func products(catalog, key, stock string) ([]product, error) {
	var ps []product
	if err := getJSON(catalog+"/products", http.Header{"X-Api-Key": {key}}, &ps); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	for i := range ps {
		var s struct{ Count int }
		if err := getJSON(stock+"/stock/"+ps[i].ID, nil, &s); err != nil {
			return nil, fmt.Errorf("stock: %w", err)
		}
		ps[i].Stock = s.Count
	}
	return ps, nil
}

func routes(catalog, key, stock, env string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		ps, err := products(catalog, key, stock)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		page.Execute(w, map[string]any{"Products": ps, "Env": env})
	})
	return mux
}

func main() {
	addr := "127.0.0.1:" + os.Getenv("PORT")
	log.Printf("web listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, routes(os.Getenv("CATALOG_URL"), os.Getenv("CATALOG_API_KEY"), os.Getenv("STOCK_URL"), os.Getenv("DROVER_ENV"))))
}
