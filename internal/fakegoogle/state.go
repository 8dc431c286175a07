package fakegoogle

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// stateVersion is the format version of Options.StateFile.
const stateVersion = 1

// formKeySize is the size of the key of seal and mac.
const formKeySize = 32

// stateSnapshot is the content of Options.StateFile: everything about the
// fake that should outlive a restart.
type stateSnapshot struct {
	Version    int         `json:"version"`
	SigningKey []byte      `json:"signing_key"` // id_token key, PKCS #8 DER
	SealingKey []byte      `json:"sealing_key"` // consent forms and page tokens
	Users      []stateUser `json:"users"`
}

// stateUser is a user, with the tokens issued to them, oldest first.
type stateUser struct {
	Email         string         `json:"email"`
	Granted       []string       `json:"granted_scopes,omitempty"`
	RefreshTokens []stateRefresh `json:"refresh_tokens,omitempty"`
	AccessTokens  []stateAccess  `json:"access_tokens,omitempty"`
	// Mailbox is set only when SetMailbox replaced the seeded mailbox,
	// which is otherwise made again from the email.
	Mailbox *stateMailbox `json:"mailbox,omitempty"`
}

type stateRefresh struct {
	Value    string    `json:"value"`
	ClientID string    `json:"client_id"`
	Scopes   []string  `json:"scopes"`
	Issued   time.Time `json:"issued"`
	LastUsed time.Time `json:"last_used"`
	Dead     bool      `json:"dead,omitempty"`
}

type stateAccess struct {
	Value  string    `json:"value"`
	Scopes []string  `json:"scopes"`
	Expiry time.Time `json:"expiry"`
	Dead   bool      `json:"dead,omitempty"`
}

type stateMailbox struct {
	Messages []Message `json:"messages"`
}

// StateFileName is the name of the fake's state file in the local
// runner's data folder.
const StateFileName = "fakegoogle.json"

// SeedStateFile writes a new state file at path, as Open does for a
// StateFile that does not exist yet, but with the process's shared signing
// key (the one of every Server without a StateFile) instead of a new one.
// A file already there is left as it is. Tests that start local runners on
// new folders seed each one: generating a 2048-bit RSA key takes seconds,
// several times that under the race detector, at every such start.
func SeedStateFile(path string) error {
	_, err := open(Options{StateFile: path}, func() (*signer, error) { return sharedSigner(), nil })
	return err
}

// openState sets up a new Server from Options.StateFile: it loads the file,
// or with no file makes new keys (the signing key from newSigner) and
// writes them at once.
func (s *Server) openState(newSigner func() (*signer, error)) error {
	path := s.opts.StateFile
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		sg, err := newSigner()
		if err != nil {
			return err
		}
		der, err := x509.MarshalPKCS8PrivateKey(sg.key)
		if err != nil {
			return fmt.Errorf("fakegoogle: encoding the id_token signing key: %w", err)
		}
		s.signer, s.signingKeyDER, s.formKey = sg, der, newFormKey()
		s.userLocked(DemoEmail)
		return s.saveLocked()
	}
	if err != nil {
		return fmt.Errorf("fakegoogle: reading the state file: %w", err)
	}
	if err := s.restore(b); err != nil {
		return fmt.Errorf("fakegoogle: the state file %s is unusable and was left as it is (move it away to start with a fresh fake Google): %w", path, err)
	}
	s.userLocked(DemoEmail)
	return nil
}

// restore loads a stateSnapshot into s, which is new and not yet shared.
func (s *Server) restore(b []byte) error {
	var st stateSnapshot
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("decoding: data after the JSON document")
	}
	if st.Version != stateVersion {
		return fmt.Errorf("format version %d, want %d", st.Version, stateVersion)
	}
	k, err := x509.ParsePKCS8PrivateKey(st.SigningKey)
	if err != nil {
		return fmt.Errorf("signing_key: %w", err)
	}
	key, ok := k.(*rsa.PrivateKey)
	if !ok {
		return fmt.Errorf("signing_key is a %T, want an RSA key", k)
	}
	if err := key.Validate(); err != nil {
		return fmt.Errorf("signing_key: %w", err)
	}
	sg, err := newSigner(key)
	if err != nil {
		return err
	}
	if len(st.SealingKey) != formKeySize {
		return fmt.Errorf("sealing_key has %d bytes, want %d", len(st.SealingKey), formKeySize)
	}
	for _, su := range st.Users {
		if !validEmail(su.Email) || normalizeEmail(su.Email) != su.Email {
			return fmt.Errorf("user %q: not a normalized email address", su.Email)
		}
		if _, dup := s.users[su.Email]; dup {
			return fmt.Errorf("user %q: listed twice", su.Email)
		}
		u := s.userLocked(su.Email)
		for _, sc := range su.Granted {
			u.granted[sc] = true
		}
		for _, r := range su.RefreshTokens {
			if r.Value == "" || s.refresh[r.Value] != nil {
				return fmt.Errorf("user %q: a refresh token is empty or repeated", su.Email)
			}
			t := &refreshToken{value: r.Value, clientID: r.ClientID, email: u.email, scopes: r.Scopes,
				issued: r.Issued, lastUsed: r.LastUsed, dead: r.Dead}
			u.refreshLog = append(u.refreshLog, t)
			s.refresh[t.value] = t
		}
		for _, a := range su.AccessTokens {
			if a.Value == "" || s.access[a.Value] != nil {
				return fmt.Errorf("user %q: an access token is empty or repeated", su.Email)
			}
			t := &accessToken{value: a.Value, email: u.email, scopes: a.Scopes, expiry: a.Expiry, dead: a.Dead}
			u.accessLog = append(u.accessLog, t)
			s.access[t.value] = t
		}
		if su.Mailbox != nil {
			u.mailbox, u.setMailbox = newMailbox(su.Mailbox.Messages), true
		}
	}
	s.signer, s.signingKeyDER, s.formKey = sg, st.SigningKey, st.SealingKey
	return nil
}

// snapshotLocked returns the durable state. s.mu must be held.
func (s *Server) snapshotLocked() stateSnapshot {
	st := stateSnapshot{Version: stateVersion, SigningKey: s.signingKeyDER, SealingKey: s.formKey}
	for _, email := range slices.Sorted(maps.Keys(s.users)) {
		u := s.users[email]
		su := stateUser{Email: u.email}
		if len(u.granted) > 0 {
			su.Granted = sortScopes(slices.Collect(maps.Keys(u.granted)))
		}
		for _, t := range u.refreshLog {
			su.RefreshTokens = append(su.RefreshTokens, stateRefresh{Value: t.value, ClientID: t.clientID,
				Scopes: t.scopes, Issued: t.issued, LastUsed: t.lastUsed, Dead: t.dead})
		}
		for _, t := range u.accessLog {
			su.AccessTokens = append(su.AccessTokens, stateAccess{Value: t.value, Scopes: t.scopes, Expiry: t.expiry, Dead: t.dead})
		}
		if u.setMailbox {
			mb := &stateMailbox{Messages: make([]Message, len(u.mailbox.msgs))}
			for i, m := range u.mailbox.msgs {
				mb.Messages[i] = m.Message
			}
			su.Mailbox = mb
		}
		st.Users = append(st.Users, su)
	}
	return st
}

// saveLocked writes the durable state to Options.StateFile, if set, in one
// atomic step. s.mu must be held, so that saves happen in the order of the
// changes they record.
func (s *Server) saveLocked() error {
	if s.opts.StateFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(s.snapshotLocked(), "", "\t")
	if err != nil {
		return fmt.Errorf("fakegoogle: encoding the state: %w", err)
	}
	if err := writeFileAtomic(s.opts.StateFile, append(b, '\n')); err != nil {
		return fmt.Errorf("fakegoogle: saving the state: %w", err)
	}
	return nil
}

// logSaveError reports a failed save where the caller has no way to return
// it. The change stays in memory and is written by the next successful save.
func (s *Server) logSaveError(err error) {
	if err != nil {
		log.Printf("%v (the change is kept in memory until the next save succeeds)", err)
	}
}

// writeFileAtomic replaces path with data, mode 0600: it writes a temporary
// file in the same folder, syncs it and renames it over path, so that path
// always holds either the old or the new content.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename itself durable. Not every system can sync a folder.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
