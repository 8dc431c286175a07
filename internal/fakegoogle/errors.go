package fakegoogle

import (
	"encoding/json"
	"net/http"
)

// writeJSON answers with status and v encoded as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "fakegoogle: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	setJSONHeaders(w.Header())
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// setJSONHeaders sets the headers of Google's JSON answers.
func setJSONHeaders(h http.Header) {
	h["Content-Type"] = []string{"application/json; charset=utf-8"}
	h["Cache-Control"] = []string{"no-cache, no-store, max-age=0, must-revalidate"}
	h["Pragma"] = []string{"no-cache"}
}

// oauthError is the error body of Google's OAuth endpoints.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// writeOAuthError answers with an OAuth error body.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, oauthError{Error: code, Description: description})
}

// apiError is the error of Google's JSON APIs, such as Gmail.
type apiError struct {
	Code    int            `json:"code"`
	Message string         `json:"message"`
	Errors  []apiErrorItem `json:"errors"`
	Status  string         `json:"status"`
}

// apiErrorItem is one entry of apiError.Errors.
type apiErrorItem struct {
	Message      string `json:"message"`
	Domain       string `json:"domain"`
	Reason       string `json:"reason"`
	Location     string `json:"location,omitempty"`
	LocationType string `json:"locationType,omitempty"`
}

// writeAPIError answers with e in Google's error envelope.
func writeAPIError(w http.ResponseWriter, e apiError) {
	writeJSON(w, e.Code, struct {
		Error apiError `json:"error"`
	}{e})
}

// statusName returns the google.rpc.Code name Google reports for an HTTP
// status.
func statusName(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "ABORTED"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "UNKNOWN"
}

// Gmail errors with Google's exact wording.
var (
	errUnauthenticated = apiError{
		Code:    http.StatusUnauthorized,
		Message: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
		Errors: []apiErrorItem{{
			Message:      "Invalid Credentials",
			Domain:       "global",
			Reason:       "authError",
			Location:     "Authorization",
			LocationType: "header",
		}},
		Status: "UNAUTHENTICATED",
	}
	errInsufficientScopes = apiError{
		Code:    http.StatusForbidden,
		Message: "Request had insufficient authentication scopes.",
		Errors: []apiErrorItem{{
			Message: "Insufficient Permission",
			Domain:  "global",
			Reason:  "insufficientPermissions",
		}},
		Status: "PERMISSION_DENIED",
	}
	errNotFound = apiError{
		Code:    http.StatusNotFound,
		Message: "Requested entity was not found.",
		Errors: []apiErrorItem{{
			Message: "Requested entity was not found.",
			Domain:  "global",
			Reason:  "notFound",
		}},
		Status: "NOT_FOUND",
	}
)

// invalidArgument returns a 400 INVALID_ARGUMENT error with message.
func invalidArgument(message string) apiError {
	return apiError{
		Code:    http.StatusBadRequest,
		Message: message,
		Errors:  []apiErrorItem{{Message: message, Domain: "global", Reason: "invalidArgument"}},
		Status:  "INVALID_ARGUMENT",
	}
}

// forbidden returns a 403 PERMISSION_DENIED error with message.
func forbidden(message string) apiError {
	return apiError{
		Code:    http.StatusForbidden,
		Message: message,
		Errors:  []apiErrorItem{{Message: message, Domain: "global", Reason: "forbidden"}},
		Status:  "PERMISSION_DENIED",
	}
}
