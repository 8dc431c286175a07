package localstore

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// TestWriteFile_IsMarshalIndentOfTheWholeStore: the file written a record
// at a time is byte for byte the indented encoding of the whole store, so
// files written before and after read the same.
func TestWriteFile_IsMarshalIndentOfTheWholeStore(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	record := func(i int) *tokenstore.Record {
		return &tokenstore.Record{
			Email: "user" + strconv.Itoa(i) + "@example.com", EmailBinding: keyring.Tag{KeyID: "k1", Sum: []byte{1, 2, byte(i)}},
			Scopes:       []string{"openid", "email"},
			RefreshToken: keyring.Sealed{KeyID: "k1", Ciphertext: []byte("sealed\x00refresh" + strconv.Itoa(i))}, RefreshTokenIssuedAt: at,
			AccessToken:       keyring.Sealed{KeyID: "k2", Ciphertext: []byte{0xff, byte(i)}},
			AccessTokenExpiry: at.Add(time.Hour), Status: tokenstore.StatusActive, GrantedAt: at, CreatedAt: at, UpdatedAt: at,
			RefreshLease: tokenstore.Lease{Holder: "h", Until: at.Add(5 * time.Second)}, Version: at.Add(time.Duration(i)),
		}
	}
	for _, n := range []int{0, 1, 3} {
		recs := map[string]*tokenstore.Record{}
		for i := range n {
			recs["1000000000000000000"+strconv.Itoa(i)] = record(i)
		}
		recs2 := map[string]*recordJSON{}
		for sub, r := range recs {
			recs2[sub] = toRecordJSON(r)
		}
		want, err := json.MarshalIndent(fileJSON{Format: fileFormat, Records: recs2}, "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		var got bytes.Buffer
		if err := writeFile(&got, recs); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%d records: writeFile wrote\n%s\nwant\n%s", n, got.Bytes(), want)
		}
	}
}
