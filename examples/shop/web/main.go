// Command web is the example shop's front end: a page listing the catalog's products with
// the stock service's counts. It finds both through CATALOG_URL and STOCK_URL, which
// Drover sets for the services it requires.
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

func getJSON(url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// products fetches the catalog and every product's stock.
func products(catalog, stock string) ([]product, error) {
	var ps []product
	if err := getJSON(catalog+"/products", &ps); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	for i := range ps {
		var s struct{ Count int }
		if err := getJSON(stock+"/stock/"+ps[i].ID, &s); err != nil {
			return nil, fmt.Errorf("stock: %w", err)
		}
		ps[i].Stock = s.Count
	}
	return ps, nil
}

func routes(catalog, stock, env string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		ps, err := products(catalog, stock)
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
	log.Fatal(http.ListenAndServe(addr, routes(os.Getenv("CATALOG_URL"), os.Getenv("STOCK_URL"), os.Getenv("DROVER_ENV"))))
}
