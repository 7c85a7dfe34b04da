// Command httpserver is the instance the runtime's tests start: it listens on
// 127.0.0.1:$PORT and answers every request with its PORT and working directory.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"time"
)

func main() {
	wd, _ := os.Getwd()
	fmt.Println("listening on", os.Getenv("PORT"))
	srv := &http.Server{
		Addr:              "127.0.0.1:" + os.Getenv("PORT"),
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "PORT=%s DIR=%s\n", os.Getenv("PORT"), wd)
		}),
	}
	log.Fatal(srv.ListenAndServe())
}
