package localstore

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// fileFormat is the store file's format version.
const fileFormat = 1

// fileJSON is the store file: {"format":1,"records":{"<sub>":{...}}}.
type fileJSON struct {
	Format  int                    `json:"format"`
	Records map[string]*recordJSON `json:"records"`
}

// recordJSON is one record in the file. Field names follow the Firestore
// documents'. Ciphertexts are base64, as encoding/json writes []byte.
type recordJSON struct {
	Email                string      `json:"email"`
	EmailBinding         *tagJSON    `json:"email_binding,omitempty"`
	Scopes               []string    `json:"scopes"`
	RefreshToken         *sealedJSON `json:"refresh_token,omitempty"`
	RefreshTokenIssuedAt time.Time   `json:"refresh_token_issued_at"`
	AccessToken          *sealedJSON `json:"access_token,omitempty"`
	AccessTokenExpiry    time.Time   `json:"access_token_expiry"`
	Status               string      `json:"status"`
	GrantedAt            time.Time   `json:"granted_at"`
	CreatedAt            time.Time   `json:"created_at"`
	UpdatedAt            time.Time   `json:"updated_at"`
	RefreshedAt          time.Time   `json:"refreshed_at"`
	RefreshLease         leaseJSON   `json:"refresh_lease,omitzero"`
	SessionsValidAfter   time.Time   `json:"sessions_valid_after"`
	Version              time.Time   `json:"version"`
}

// leaseJSON is a refresh lease in the file.
type leaseJSON struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

type sealedJSON struct {
	KeyID      string `json:"key_id"`
	Ciphertext []byte `json:"ciphertext"`
}

type tagJSON struct {
	KeyID string `json:"key_id"`
	Sum   []byte `json:"mac"`
}

func toTagJSON(t keyring.Tag) *tagJSON {
	if t.IsZero() {
		return nil
	}
	return &tagJSON{KeyID: t.KeyID, Sum: t.Sum}
}

func (t *tagJSON) tag() keyring.Tag {
	if t == nil {
		return keyring.Tag{}
	}
	return keyring.Tag{KeyID: t.KeyID, Sum: t.Sum}
}

func toSealedJSON(s keyring.Sealed) *sealedJSON {
	if s.IsZero() {
		return nil
	}
	return &sealedJSON{KeyID: s.KeyID, Ciphertext: s.Ciphertext}
}

func (s *sealedJSON) sealed() keyring.Sealed {
	if s == nil {
		return keyring.Sealed{}
	}
	return keyring.Sealed{KeyID: s.KeyID, Ciphertext: s.Ciphertext}
}

// load reads the store file at path. It returns nil, nil when there is no
// file (or it is empty), and an error naming the file when it cannot be
// parsed.
func load(path string) (map[string]*tokenstore.Record, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && len(data) == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("localstore: read %s: %w", path, err)
	}
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("localstore: %s is corrupt and was left untouched: %w", path, err)
	}
	if f.Format != fileFormat {
		return nil, fmt.Errorf("localstore: %s has format %d, want %d; it was left untouched", path, f.Format, fileFormat)
	}
	recs := make(map[string]*tokenstore.Record, len(f.Records))
	for sub, r := range f.Records {
		if r == nil {
			return nil, fmt.Errorf("localstore: %s is corrupt and was left untouched: record %q is null", path, sub)
		}
		recs[sub] = &tokenstore.Record{
			Sub: sub, Email: r.Email, EmailBinding: r.EmailBinding.tag(), Scopes: r.Scopes,
			RefreshToken: r.RefreshToken.sealed(), RefreshTokenIssuedAt: r.RefreshTokenIssuedAt,
			AccessToken: r.AccessToken.sealed(), AccessTokenExpiry: r.AccessTokenExpiry,
			Status: tokenstore.Status(r.Status), GrantedAt: r.GrantedAt,
			CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, RefreshedAt: r.RefreshedAt,
			RefreshLease: tokenstore.Lease(r.RefreshLease), SessionsValidAfter: r.SessionsValidAfter, Version: r.Version,
		}
	}
	return recs, nil
}

// save replaces the store file at path with recs, atomically: it writes a
// temporary file in the same directory, syncs it, renames it over path and
// syncs the directory. The file is json.MarshalIndent's of a fileJSON, with
// "\t" indents, written one record at a time: encoding the whole store into
// one buffer on each write made a login's garbage grow with the number of
// users, and with it the process's peak memory (see BENCHMARKS.md).
func save(path string, recs map[string]*tokenstore.Record) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("localstore: create directory for %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, tempPrefix(path)+"*") // mode 0600
	if err != nil {
		return fmt.Errorf("localstore: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	err = writeFile(tmp, recs)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("localstore: write %s: %w", path, err)
	}
	return nil
}

// writeFile writes recs to w as json.MarshalIndent(fileJSON, "", "\t")
// would, and a newline, keeping no more than one record encoded at a time.
func writeFile(w io.Writer, recs map[string]*tokenstore.Record) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "{\n\t\"format\": %d,\n\t\"records\": {", fileFormat)
	var rec bytes.Buffer
	for i, sub := range slices.Sorted(maps.Keys(recs)) {
		key, err := json.Marshal(sub)
		if err != nil {
			return err
		}
		b, err := json.Marshal(toRecordJSON(recs[sub]))
		if err != nil {
			return fmt.Errorf("encode record %s: %w", sub, err)
		}
		rec.Reset()
		if err := json.Indent(&rec, b, "\t\t", "\t"); err != nil {
			return err
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n\t\t")
		bw.Write(key)
		bw.WriteString(": ")
		bw.Write(rec.Bytes())
	}
	if len(recs) > 0 {
		bw.WriteString("\n\t")
	}
	bw.WriteString("}\n}\n")
	return bw.Flush()
}

// toRecordJSON is r as the file holds it.
func toRecordJSON(r *tokenstore.Record) *recordJSON {
	return &recordJSON{
		Email: r.Email, EmailBinding: toTagJSON(r.EmailBinding), Scopes: r.Scopes,
		RefreshToken: toSealedJSON(r.RefreshToken), RefreshTokenIssuedAt: r.RefreshTokenIssuedAt,
		AccessToken: toSealedJSON(r.AccessToken), AccessTokenExpiry: r.AccessTokenExpiry,
		Status: string(r.Status), GrantedAt: r.GrantedAt,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, RefreshedAt: r.RefreshedAt,
		RefreshLease: leaseJSON(r.RefreshLease), SessionsValidAfter: r.SessionsValidAfter, Version: r.Version,
	}
}

// tempPrefix begins the names of the temporary files save writes beside
// path.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// removeTemps removes the temporary files a process killed in the middle
// of save left beside path. Only one process uses a store file, and it
// calls this before its first write, so none of them is still being
// written.
func removeTemps(path string) error {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("localstore: look for leftovers of %s: %w", path, err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix(path)) || !e.Type().IsRegular() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("localstore: remove leftover %s: %w", e.Name(), err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
