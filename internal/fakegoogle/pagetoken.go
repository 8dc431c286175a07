package fakegoogle

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// sealPurposePage separates page tokens from other authenticated values.
const sealPurposePage = "page"

// pageTokenMACSize is how many bytes of MAC a page token carries.
const pageTokenMACSize = 12

// errBadPageToken is returned for page tokens this Server did not make.
var errBadPageToken = errors.New("fakegoogle: malformed page token")

// pageKey is the position of the last message of a page: the next page
// starts after it. Keying on the message rather than an offset keeps paging
// stable while the mailbox changes.
type pageKey struct {
	date time.Time
	id   string
}

// encodePageToken returns the opaque nextPageToken for k.
func (s *Server) encodePageToken(k pageKey) string {
	payload := binary.BigEndian.AppendUint64(nil, uint64(k.date.Unix()))
	payload = binary.BigEndian.AppendUint32(payload, uint32(k.date.Nanosecond()))
	payload = append(payload, k.id...)
	mac := s.mac(sealPurposePage, payload)[:pageTokenMACSize]
	return base64.RawURLEncoding.EncodeToString(append(payload, mac...))
}

// decodePageToken reverses encodePageToken.
func (s *Server) decodePageToken(token string) (pageKey, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 12+pageTokenMACSize {
		return pageKey{}, errBadPageToken
	}
	payload, mac := b[:len(b)-pageTokenMACSize], b[len(b)-pageTokenMACSize:]
	if !hmac.Equal(mac, s.mac(sealPurposePage, payload)[:pageTokenMACSize]) {
		return pageKey{}, errBadPageToken
	}
	secs := int64(binary.BigEndian.Uint64(payload[:8]))
	nanos := int64(binary.BigEndian.Uint32(payload[8:12]))
	return pageKey{date: time.Unix(secs, nanos), id: string(payload[12:])}, nil
}
