// Binary main file implements an HTTP server that loads and runs user's code
// on incoming HTTP requests.
package main

import (
	"log"
	"net/http"
	"os"

	// Blank import the function package to run the init(), which is where
	// declarative function signatures are expected to be registered.
	_ "github.com/gmail-oauth-functions/gmail-oauth-functions"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
)

func main() {
	// Don't invoke the function for reserved URLs.
	http.HandleFunc("/robots.txt", http.NotFound)
	http.HandleFunc("/favicon.ico", http.NotFound)

	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if err := funcframework.Start(port); err != nil {
		log.Fatalf("Function failed to start: %v\n", err)
	}
}
