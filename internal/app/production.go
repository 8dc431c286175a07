package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"cloud.google.com/go/firestore"
	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"google.golang.org/api/idtoken"
	"google.golang.org/api/option"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/config"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/logging"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/secrets"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/firestorestore"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore/localstore"
)

// FromEnv builds the App from the environment: what a deployed instance
// runs. Clients are created here, once per instance.
func FromEnv(ctx context.Context) (*App, error) {
	cfg, err := config.FromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	log := logging.NewFormat(cfg.LogFormat, os.Stdout, cfg.ProjectID, cfg.LogLevel)
	d := Deps{Logger: log}

	var sm *secretmanager.Client
	secret := func(name, file string) (secrets.Fetcher, error) {
		if file != "" {
			return secrets.File{Path: file}, nil
		}
		if sm == nil {
			if sm, err = secretmanager.NewClient(ctx); err != nil {
				return nil, fmt.Errorf("secret manager client: %w", err)
			}
		}
		return secrets.SecretManager{Client: sm, Name: name}, nil
	}
	if d.ClientSecret, err = secret(cfg.ClientSecretName, cfg.ClientSecretFile); err != nil {
		return nil, err
	}
	if d.Keys, err = secret(cfg.KeysSecretName, cfg.KeysFile); err != nil {
		return nil, err
	}

	switch cfg.Store {
	case config.StoreFirestore:
		fs, err := firestore.NewClientWithDatabase(ctx, cfg.ProjectID, cfg.FirestoreDatabase,
			option.WithGRPCDialOption(firestorestore.DialOption()))
		if err != nil {
			return nil, fmt.Errorf("firestore client: %w", err)
		}
		st := firestorestore.New(fs, cfg.FirestoreCollection)
		st.Timeout = cfg.StoreTimeout
		d.Store = st
	default:
		st, err := localstore.Open(cfg.LocalStorePath)
		if err != nil {
			return nil, fmt.Errorf("LOCAL_STORE_PATH: %w", err)
		}
		d.Store = st
	}
	if cfg.ListAuthMode == config.AuthIAM {
		v, err := idtoken.NewValidator(ctx)
		if err != nil {
			return nil, fmt.Errorf("ID token validator: %w", err)
		}
		d.IDTokens = v
	}
	log.Info("instance ready", slog.String("store", cfg.Store), slog.String("list_auth_mode", cfg.ListAuthMode))
	return New(cfg, d)
}
