package fakegoogle

import "maps"

// Counter names, as accepted by Count.
const (
	CountAuth         = "auth"          // GET of the authorization endpoint
	CountConsent      = "consent"       // POST of the consent form
	CountTokenCode    = "token.code"    // token requests with grant_type=authorization_code
	CountTokenRefresh = "token.refresh" // token requests with grant_type=refresh_token
	CountTokenOther   = "token.other"   // token requests with any other or no grant_type
	CountRevoke       = "revoke"        // revocation requests
	CountUserinfo     = "userinfo"      // userinfo requests
	CountGmailList    = "gmail.list"    // users.messages.list requests, not in a batch
	CountGmailGet     = "gmail.get"     // users.messages.get requests, not in a batch
	CountGmailBatch   = "gmail.batch"   // requests to Gmail's batch endpoint
	// CountGmailBatchPart counts the calls (parts) in the requests to the
	// batch endpoint, those refused with the whole batch included.
	CountGmailBatchPart = "gmail.batch.part"
)

// count records one request to the endpoint called name.
func (s *Server) count(name string) { s.countN(name, 1) }

// countN records n requests to the endpoint called name.
func (s *Server) countN(name string, n int) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	s.counts[name] += n
	s.mu.Unlock()
}

// Count returns the number of requests the endpoint called name received
// since the Server was created or ResetCounts was called. Requests answered
// with an error or an injected fault count too.
func (s *Server) Count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[name]
}

// Counts returns a copy of all non-zero counters, by name.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

// ResetCounts sets every counter to zero.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counts)
}
