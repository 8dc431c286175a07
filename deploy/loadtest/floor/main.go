// Command floor is the load tool's "floor" target: the least a ListMessages
// could cost. It is a plain reverse proxy (net/http/httputil) that forwards
// a ListMessages-shaped request (GET /ListMessages?maxResults=...) to the
// Gmail list endpoint with one fixed access token and copies the answer's
// bytes back: no user, no store, no token, no decoding, no log line.
//
// The load tool (deploy/loadtest -floor) builds it and runs it as a process
// of its own, so that its CPU time and RSS are measured as the functions'
// are, under the same load in the same run.
//
//	FLOOR_GMAIL_LIST=http://localhost:PORT/gmail/v1/users/me/messages \
//	FLOOR_TOKEN=ya29... floor -port 8081
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

// gmailParams are the ListMessages parameters that pass to Gmail's list as
// they are, as the functions pass them.
var gmailParams = []string{"q", "labelIds", "maxResults", "pageToken", "includeSpamTrash"}

func main() {
	port := flag.String("port", "8081", "loopback port to serve on")
	flag.Parse()
	target, err := url.Parse(os.Getenv("FLOOR_GMAIL_LIST"))
	if err != nil || target.Host == "" {
		log.Fatalf("floor: FLOOR_GMAIL_LIST %q is not a URL", os.Getenv("FLOOR_GMAIL_LIST"))
	}
	token := os.Getenv("FLOOR_TOKEN")
	if token == "" {
		log.Fatal("floor: FLOOR_TOKEN is empty")
	}
	srv := &http.Server{
		Addr:              net.JoinHostPort("127.0.0.1", *port),
		Handler:           proxy(target, token),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Fatal(srv.ListenAndServe())
}

// proxy forwards GET /ListMessages to target, with the Gmail parameters of
// the request's query, the fields ListMessages asks for and the token.
func proxy(target *url.URL, token string) http.Handler {
	// The functions' own pool: up to 100 idle connections to Google.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 100
	rp := &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			in := pr.In.URL.Query()
			q := url.Values{"alt": {"json"}, "prettyPrint": {"false"},
				"fields": {"messages(id,threadId),nextPageToken,resultSizeEstimate"}}
			for _, k := range gmailParams {
				if v, ok := in[k]; ok {
					q[k] = v
				}
			}
			u := *target
			u.RawQuery = q.Encode()
			pr.Out.URL = &u
			pr.Out.Host = ""
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Set("Authorization", "Bearer "+token)
		},
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ListMessages", rp)
	return mux
}
