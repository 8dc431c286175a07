// Command local runs all the functions on localhost with the Functions
// Framework, and beside them a home page at / (package homepage) that
// connects Gmail, lists the inbox and disconnects through the functions'
// HTTP API. With no settings it needs nothing else: it serves a fake Google
// (consent page and demo mailbox), keeps tokens in a local file and
// generates development keys, so the whole flow can be clicked through with
// no Google account and no network. With real settings (a client secret
// file or Secret Manager name, and the other variables of the README) it
// talks to real Google instead. It logs short text lines unless
// LOG_FORMAT=json.
//
//	go run ./functions/cmd/local
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	_ "github.com/gmail-oauth-functions/gmail-oauth-functions/functions"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/homepage"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
)

func main() {
	port := flag.String("port", envOr("PORT", "8080"), "port for the functions")
	fakePort := flag.String("fake-google-port", envOr("FAKE_GOOGLE_PORT", "8090"), "port for the fake Google, when it is used")
	dataDir := flag.String("data", envOr("LOCAL_DATA_DIR", ".local"), "folder for the local token store and dev keys")
	autoApprove := flag.Bool("auto-approve", os.Getenv("FAKE_GOOGLE_AUTO_APPROVE") == "true", "the fake Google approves without showing its consent page (scripted runs)")
	latency, err := time.ParseDuration(envOr("FAKE_GOOGLE_LATENCY", "0s"))
	if err != nil {
		log.Fatalf("local: FAKE_GOOGLE_LATENCY: %v", err)
	}
	flag.DurationVar(&latency, "fake-google-latency", latency, "latency the fake Google adds to every answer, e.g. 20ms, as a stand-in for the round trip to Google (load runs; env FAKE_GOOGLE_LATENCY)")
	noQuota := flag.Bool("fake-google-no-quota", os.Getenv("FAKE_GOOGLE_NO_QUOTA") == "true", "the fake Google does not enforce Gmail's per-user quota of 6000 units a minute (load runs; env FAKE_GOOGLE_NO_QUOTA=true)")
	flag.Parse()
	fake := fakegoogle.Options{AutoApprove: *autoApprove, Latency: latency}
	if *noQuota {
		fake.GmailQuotaPerMinute = -1
	}
	if err := run(*port, *fakePort, *dataDir, fake); err != nil {
		log.Fatalf("local: %v", err)
	}
}

func run(port, fakePort, dataDir string, fake fakegoogle.Options) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	base := "http://localhost:" + port
	real := os.Getenv("OAUTH_CLIENT_SECRET") != "" || os.Getenv("OAUTH_CLIENT_SECRET_FILE") != ""
	if !real {
		if err := startFakeGoogle(fakePort, dataDir, base, fake); err != nil {
			return err
		}
	}
	if os.Getenv("TOKEN_KEYS_SECRET") == "" {
		keys, err := devKeys(dataDir)
		if err != nil {
			return err
		}
		setDefault("TOKEN_KEYS_FILE", keys)
	}
	if os.Getenv("FIRESTORE_EMULATOR_HOST") != "" {
		setDefault("TOKEN_STORE", "firestore")
		setDefault("GOOGLE_CLOUD_PROJECT", "local-project")
	}
	setDefault("TOKEN_STORE", "local")
	setDefault("LOCAL_STORE_PATH", filepath.Join(dataDir, "tokens.json"))
	setDefault("OAUTH_REDIRECT_URL", base+"/Callback")
	setDefault("AUTHORIZE_URL", base+"/Authorize")
	setDefault("LOG_FORMAT", "text")

	// The home page takes / and what no function matches; the functions'
	// own paths are more specific, so they are not shadowed.
	if err := funcframework.RegisterHTTPFunctionContext(context.Background(), homepage.PagePath, homepage.Handler().ServeHTTP); err != nil {
		return fmt.Errorf("home page: %w", err)
	}
	addr := "localhost:" + port
	ln, err := net.Listen("tcp", addr) // is it free? Say so before starting.
	if err != nil {
		return fmt.Errorf("functions: %w", err)
	}
	ln.Close() // the Functions Framework listens on it next
	served := make(chan error, 1)
	go func() { served <- funcframework.StartHostPort("localhost", port) }()
	if err := awaitListening(addr, served, 30*time.Second); err != nil {
		return fmt.Errorf("functions framework: %w", err)
	}

	fmt.Printf("\nFunctions on %s: /Authorize /Callback /ListMessages /Disconnect\n", base)
	if !real {
		fmt.Printf("Google is the local fake on http://localhost:%s (no account, no network needed).\n", fakePort)
	}
	fmt.Printf("\nOpen %s/\n\n", base)
	return fmt.Errorf("functions framework: %w", <-served)
}

// awaitListening waits until addr accepts connections, so that the URL to
// open is printed only once it works, or until serving fails.
func awaitListening(addr string, served <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-served:
			return err
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s does not accept connections after %v: %w", addr, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startFakeGoogle serves the fake Google, with opts, and points every Google
// setting the user has not set at it. The fake keeps what it issued in the
// data folder, next to the tokens the app stores, so both survive a restart.
func startFakeGoogle(port, dataDir, base string, opts fakegoogle.Options) error {
	opts.RedirectURIs = []string{base + "/Callback"}
	opts.StateFile = filepath.Join(dataDir, fakegoogle.StateFileName)
	fake, err := fakegoogle.Open(opts)
	if err != nil {
		return fmt.Errorf("fake Google: %w", err)
	}
	ln, err := net.Listen("tcp", "localhost:"+port)
	if err != nil {
		return fmt.Errorf("fake Google: %w", err)
	}
	fakeURL := "http://localhost:" + port
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatalf("fake Google: %v", err)
		}
	}()
	client := filepath.Join(dataDir, "fake_client_secret.json")
	if err := os.WriteFile(client, fake.ClientSecretJSON(fakeURL, base+"/Callback"), 0o600); err != nil {
		return fmt.Errorf("fake client secret: %w", err)
	}
	ep := fakegoogle.Endpoints(fakeURL)
	setDefault("OAUTH_CLIENT_SECRET_FILE", client)
	setDefault("GOOGLE_AUTH_URL", ep.AuthURL)
	setDefault("GOOGLE_TOKEN_URL", ep.TokenURL)
	setDefault("GOOGLE_REVOKE_URL", ep.RevokeURL)
	setDefault("GOOGLE_USERINFO_URL", ep.UserinfoURL)
	setDefault("GMAIL_ENDPOINT", ep.GmailEndpoint)
	return nil
}

// devKeys returns the development key set file, generating it once so that
// tokens stored by an earlier run still decrypt.
func devKeys(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "dev_keys.json")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.WriteFile(path, keyring.Generate("dev-"+time.Now().UTC().Format("20060102")), 0o600); err != nil {
		return "", fmt.Errorf("dev keys: %w", err)
	}
	return path, nil
}

func envOr(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}

func setDefault(k, v string) {
	if os.Getenv(k) == "" {
		os.Setenv(k, v)
	}
}
