package app

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/keyring"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// claimEmail makes the token endpoint's id_token claim email, verified or
// not, for whichever account signs in: an account whose address Google has
// not verified, or one whose address moved to another account.
func (h *harness) claimEmail(email string, verified any) {
	h.rewriteToken(func(m map[string]any) {
		m["id_token"] = forgeIDToken(forgeIDToken(m["id_token"], "email", email), "email_verified", verified)
	})
}

// TestIAM_UnverifiedEmail_NeverNamesAnAccount is the audit's finding: an
// account whose id_token claims demo's address, unverified, signs in; an
// allowed server caller then asks for user=demo. Callback refuses that
// identity (nothing stored), so the caller never gets the impostor's mail.
func TestIAM_UnverifiedEmail_NeverNamesAnAccount(t *testing.T) {
	const impostor = "impostor@example.com"
	for _, verified := range []any{false, "false", nil} {
		t.Run(describeClaim(verified), func(t *testing.T) {
			v, _ := newIDTokenValidator(t)
			h := newHarness(t, iamMode(v))
			h.fake.SetMailbox(impostor, []fakegoogle.Message{{ID: "impostor-mail", Subject: "s", Date: h.clock.Now()}})
			h.claimEmail(demo, verified)
			resp := h.callback(h.consent(h.authorize("login_hint="+impostor), impostor, true, true), "Accept", jsonAccept)
			if e := decode[apiError](t, resp); resp.StatusCode != http.StatusForbidden || e.Code != "email_not_verified" {
				t.Errorf("Callback for an unverified email: %d %+v, want 403 email_not_verified", resp.StatusCode, e)
			}
			if h.record(impostor) != nil {
				t.Error("a record was stored for an unverified email")
			}
			h.setIntercept(nil)
			h.jar = map[string]string{}
			resp = h.get("/ListMessages?user="+url.QueryEscape(demo), "Authorization", "Bearer "+callerToken(nil))
			b := body(resp)
			if strings.Contains(b, "impostor-mail") || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("user=%s got %d %s; want 401 authorization_required, never the impostor's mail", demo, resp.StatusCode, b)
			}
		})
	}
}

func describeClaim(v any) string {
	switch v {
	case nil:
		return "email_verified missing"
	case "false":
		return `email_verified "false"`
	}
	return "email_verified false"
}

// listAs lists user's mail as the allowed IAM caller.
func (h *harness) listAs(user string) *http.Response {
	h.t.Helper()
	return h.get("/ListMessages?maxResults=3&user="+url.QueryEscape(user), "Authorization", "Bearer "+callerToken(nil))
}

func TestIAM_UserEmailInAnyCase_FindsTheAccount(t *testing.T) {
	h, _ := iamHarness(t)
	for _, user := range []string{demo, strings.ToUpper(demo), "Demo@Example.Com"} {
		if resp := h.listAs(user); resp.StatusCode != http.StatusOK {
			t.Errorf("user=%s: %d %s", user, resp.StatusCode, body(resp))
		}
	}
}

// TestIAM_EmailOnTwoAccounts_409NamesTheAmbiguity: an address can move from
// one Google account to another (a renamed Workspace user); both accounts'
// records then carry it, each verified when it was stored. A lookup by that
// email is refused, never guessed; by sub each account is found.
func TestIAM_EmailOnTwoAccounts_409NamesTheAmbiguity(t *testing.T) {
	const other = "other@example.com"
	h, _ := iamHarness(t)
	h.fake.SetMailbox(other, []fakegoogle.Message{{ID: "other-mail", Subject: "s", Date: h.clock.Now()}})
	h.claimEmail(strings.ToUpper(demo), true) // other's account now has demo's address
	wantStatus(t, h.login(other), http.StatusOK)
	h.setIntercept(nil)
	h.jar = map[string]string{}

	for _, user := range []string{demo, strings.ToUpper(demo)} {
		resp := h.listAs(user)
		if e := decode[apiError](t, resp); resp.StatusCode != http.StatusConflict || e.Code != "ambiguous_user" || !strings.Contains(e.Description, "user=<sub>") {
			t.Errorf("user=%s: %d %+v, want 409 ambiguous_user asking for user=<sub>", user, resp.StatusCode, e)
		}
	}
	if n := h.fake.Count(fakegoogle.CountGmailList); n != 0 {
		t.Fatalf("an ambiguous lookup reached Gmail %d times", n)
	}
	for email, want := range map[string]string{demo: `"messages"`, other: "other-mail"} {
		if b := wantStatus(t, h.listAs(h.fake.UserSub(email)), http.StatusOK); !strings.Contains(b, want) {
			t.Errorf("user=<sub of %s>: %s", email, b)
		}
	}
}

// TestIAM_EmailRelabelledInTheStore_NotFollowed: someone who can write the
// store but holds no key relabels their own record with the victim's email,
// to have lookups by that email return their record. Its binding does not
// check out, so the lookup leaves it out (and logs it): it finds the
// victim's record, or nobody.
func TestIAM_EmailRelabelledInTheStore_NotFollowed(t *testing.T) {
	const victim, attacker = "victim@example.com", "attacker@example.com"
	tests := []struct {
		name       string
		victimIn   bool // the victim has connected
		relabel    func(attacker, victim *tokenstore.Record)
		wantLog    string
		wantStatus int
	}{
		{"email changed", true, func(a, v *tokenstore.Record) { a.Email = victim },
			"email binding does not check out", http.StatusOK},
		{"email and the victim's binding copied", true, func(a, v *tokenstore.Record) { a.Email, a.EmailBinding = v.Email, v.EmailBinding },
			"email binding does not check out", http.StatusOK},
		{"email changed, victim not connected", false, func(a, v *tokenstore.Record) { a.Email = victim },
			"email binding does not check out", http.StatusUnauthorized},
		{"binding removed, as on a record from before bindings", false, func(a, v *tokenstore.Record) { a.Email, a.EmailBinding = victim, keyring.Tag{} },
			"stored before email bindings", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := iamHarness(t)
			h.fake.SetMailbox(attacker, []fakegoogle.Message{{ID: "attacker-mail", Subject: "s", Date: h.clock.Now()}})
			h.fake.SetMailbox(victim, []fakegoogle.Message{{ID: "victim-mail", Subject: "s", Date: h.clock.Now()}})
			if tt.victimIn {
				wantStatus(t, h.login(victim), http.StatusOK)
			}
			wantStatus(t, h.login(attacker), http.StatusOK)
			v := h.record(victim)
			if v == nil {
				v = &tokenstore.Record{}
			}
			if _, err := h.store.Update(t.Context(), h.fake.UserSub(attacker), func(cur *tokenstore.Record) (*tokenstore.Record, error) {
				next := *cur
				tt.relabel(&next, v)
				return &next, nil
			}); err != nil {
				t.Fatal(err)
			}
			resp := h.listAs(victim)
			b := body(resp)
			if resp.StatusCode != tt.wantStatus || strings.Contains(b, "attacker-mail") {
				t.Fatalf("user=%s: %d %s; want %d, never the relabelled record's mail", victim, resp.StatusCode, b, tt.wantStatus)
			}
			if tt.victimIn && !strings.Contains(b, "victim-mail") {
				t.Fatalf("user=%s did not list the victim's mail: %s", victim, b)
			}
			if !strings.Contains(h.logs.String(), tt.wantLog) {
				t.Errorf("no log line saying %q", tt.wantLog)
			}
			if b := wantStatus(t, h.listAs(h.fake.UserSub(attacker)), http.StatusOK); !strings.Contains(b, "attacker-mail") {
				t.Errorf("the relabelled record is not found by its sub any more: %s", b)
			}
		})
	}
}
