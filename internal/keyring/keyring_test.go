package keyring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
)

func mustParse(t *testing.T, primary string, ids ...string) *Ring {
	t.Helper()
	keys := map[string][]byte{}
	for i, id := range ids {
		keys[id] = bytes.Repeat([]byte{byte(i + 1)}, KeySize)
	}
	r, err := New(primary, keys)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSealOpen_RoundTripsWithSameAAD(t *testing.T) {
	r := mustParse(t, "k1", "k1")
	s := r.Seal([]byte("refresh-token"), []byte("sub-1"))
	if bytes.Contains(s.Ciphertext, []byte("refresh-token")) {
		t.Fatal("ciphertext contains the plaintext")
	}
	got, err := r.Open(s, []byte("sub-1"))
	if err != nil || string(got) != "refresh-token" {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestOpen_Refusals(t *testing.T) {
	r := mustParse(t, "k1", "k1")
	good := r.Seal([]byte("secret"), []byte("sub-1"))
	flipped := Sealed{KeyID: "k1", Ciphertext: bytes.Clone(good.Ciphertext)}
	flipped.Ciphertext[len(flipped.Ciphertext)-1] ^= 1
	tests := []struct {
		name string
		s    Sealed
		aad  string
		want error
	}{
		{"other user's aad", good, "sub-2", ErrOpen},
		{"tampered ciphertext", flipped, "sub-1", ErrOpen},
		{"unknown key id", Sealed{KeyID: "k9", Ciphertext: good.Ciphertext}, "sub-1", ErrUnknownKey},
		{"truncated", Sealed{KeyID: "k1", Ciphertext: good.Ciphertext[:10]}, "sub-1", ErrOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := r.Open(tt.s, []byte(tt.aad)); !errors.Is(err, tt.want) {
				t.Fatalf("Open err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRotation_OldKeyStillOpensAndNewDataUsesPrimary(t *testing.T) {
	old := mustParse(t, "k1", "k1")
	s := old.Seal([]byte("tok"), nil)
	rotated := mustParse(t, "k2", "k1", "k2")
	got, err := rotated.Open(s, nil)
	if err != nil || string(got) != "tok" {
		t.Fatalf("rotated ring cannot open old data: %q, %v", got, err)
	}
	if !rotated.NeedsReseal(s) {
		t.Fatal("data under a non-primary key should need resealing")
	}
	if n := rotated.Seal([]byte("tok"), nil); n.KeyID != "k2" || rotated.NeedsReseal(n) {
		t.Fatalf("new data sealed under %q, want k2", n.KeyID)
	}
}

func TestDerive_PurposesDoNotOpenEachOther(t *testing.T) {
	r := mustParse(t, "k1", "k1")
	a, b := r.Derive("cookie"), r.Derive("token")
	s := a.Seal([]byte("x"), nil)
	if _, err := b.Open(s, nil); !errors.Is(err, ErrOpen) {
		t.Fatalf("a ciphertext for one purpose opened under another: %v", err)
	}
	if _, err := r.Derive("cookie").Open(s, nil); err != nil {
		t.Fatalf("derivation is not deterministic: %v", err)
	}
}

func TestParse(t *testing.T) {
	k := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, KeySize))
	short := base64.StdEncoding.EncodeToString([]byte("short"))
	tests := []struct {
		name, json string
		ok         bool
	}{
		{"valid", fmt.Sprintf(`{"primary":"a","keys":{"a":%q}}`, k), true},
		{"generated", string(Generate("dev")), true},
		{"primary missing from keys", fmt.Sprintf(`{"primary":"b","keys":{"a":%q}}`, k), false},
		{"short key", fmt.Sprintf(`{"primary":"a","keys":{"a":%q}}`, short), false},
		{"not base64", `{"primary":"a","keys":{"a":"%%%"}}`, false},
		{"no keys", `{"primary":"a","keys":{}}`, false},
		{"not json", `primary=a`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.json))
			if (err == nil) != tt.ok {
				t.Fatalf("Parse err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && bytes.Contains([]byte(err.Error()), []byte(k)) {
				t.Fatal("error message contains key material")
			}
		})
	}
}

func TestTag_ChecksUnderTheKeyItNames(t *testing.T) {
	old := mustParse(t, "k1", "k1")
	r := mustParse(t, "k2", "k1", "k2")
	data := []byte("collection\x00sub\x00demo@example.com")
	t1, t2 := old.Tag(data), r.Tag(data)
	if t2.KeyID != "k2" || len(t2.Sum) != 32 {
		t.Fatalf("Tag = %+v, want a 32-byte sum under the primary k2", t2)
	}
	for _, tag := range []Tag{t1, t2} {
		if err := r.CheckTag(tag, data); err != nil {
			t.Errorf("CheckTag(%s) = %v, want nil", tag.KeyID, err)
		}
	}
	flipped := Tag{KeyID: "k2", Sum: bytes.Clone(t2.Sum)}
	flipped.Sum[0] ^= 1
	tests := []struct {
		name string
		tag  Tag
		data []byte
		want error
	}{
		{"other data", t2, []byte("collection\x00sub\x00other@example.com"), ErrOpen},
		{"flipped bit", flipped, data, ErrOpen},
		{"another key's id", Tag{KeyID: "k1", Sum: t2.Sum}, data, ErrOpen},
		{"truncated", Tag{KeyID: "k2", Sum: t2.Sum[:16]}, data, ErrOpen},
		{"zero", Tag{}, data, ErrUnknownKey},
		{"unknown key", Tag{KeyID: "k9", Sum: t2.Sum}, data, ErrUnknownKey},
	}
	for _, tt := range tests {
		if err := r.CheckTag(tt.tag, tt.data); !errors.Is(err, tt.want) {
			t.Errorf("%s: CheckTag = %v, want %v", tt.name, err, tt.want)
		}
	}
	if err := r.Derive("other").CheckTag(t2, data); !errors.Is(err, ErrOpen) {
		t.Errorf("a tag checks under a key derived for another purpose: %v", err)
	}
}
