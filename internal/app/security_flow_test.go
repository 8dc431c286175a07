package app

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/fakegoogle"
	"github.com/gmail-oauth-functions/gmail-oauth-functions/internal/tokenstore"
)

// TestCallback_LoginCSRF_AttackersCallbackInVictimsBrowser_Refused: an
// attacker completes consent with their own account and makes the victim's
// browser load the resulting Callback URL, to connect the victim's session
// to the attacker's mailbox. The victim's browser has no flow cookie for
// that state (or one for another state): 400, nothing exchanged or stored,
// no session.
func TestCallback_LoginCSRF_AttackersCallbackInVictimsBrowser_Refused(t *testing.T) {
	const attacker = "attacker@example.com"
	for _, victimStartedAFlow := range []bool{false, true} {
		t.Run(map[bool]string{false: "victim has no flow", true: "victim has a flow of their own"}[victimStartedAFlow], func(t *testing.T) {
			h := newHarness(t)
			attackersCallback := h.consent(h.authorize("login_hint="+attacker), attacker, true, true)
			h.jar = map[string]string{} // the victim's browser
			if victimStartedAFlow {
				h.authorize("")
			}
			resp := h.callback(attackersCallback, "Accept", htmlAccept)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body(resp), titles["invalid_state"]) {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if _, ok := h.jar[secSessionCookie]; ok || h.record(attacker) != nil || h.fake.Count(fakegoogle.CountTokenCode) != 0 {
				t.Fatal("the attacker's authorization was exchanged, stored or became the victim's session")
			}
		})
	}
}

// TestCallback_InjectedCode_RefusedByPKCE: an attacker who stole a
// victim's authorization code replays it through their own flow (their
// flow cookie, their state). The code is bound to the victim's PKCE
// challenge, so Google refuses the attacker's verifier: the attacker gets
// no session for the victim, nothing is stored, and the victim's own
// callback still works.
func TestCallback_InjectedCode_RefusedByPKCE(t *testing.T) {
	const victim = "victim@example.com"
	h := newHarness(t)
	victimsCallback := h.consent(h.authorize("login_hint="+victim), victim, true, true)
	victimsJar := h.jar

	h.jar = map[string]string{} // the attacker's browser, with a flow of its own
	u, _ := url.Parse(h.authorize(""))
	stolen, _ := url.Parse(victimsCallback)
	injected := base + "/Callback?" + url.Values{"state": {u.Query().Get("state")}, "code": {stolen.Query().Get("code")}}.Encode()
	resp := h.callback(injected, "Accept", jsonAccept)
	if e := decode[apiError](t, resp); resp.StatusCode != http.StatusBadRequest || e.Code != "code_exchange_failed" {
		t.Fatalf("injected code: %d %+v", resp.StatusCode, e)
	}
	if _, ok := h.jar[secSessionCookie]; ok || h.record(victim) != nil {
		t.Fatal("the injected code gave the attacker a session or stored the victim's grant")
	}

	h.jar = victimsJar
	wantStatus(t, h.callback(victimsCallback), http.StatusOK)
	if h.record(victim) == nil {
		t.Fatal("the victim's own callback failed after the injection attempt")
	}
}

// TestListMessages_CiphertextMovedToAnotherUser_NotOpened: tokens are
// sealed with the user's sub as associated data, so someone who can write
// to the store (but has no key) cannot copy a victim's sealed tokens into
// their own record and list the victim's mail.
func TestListMessages_CiphertextMovedToAnotherUser_NotOpened(t *testing.T) {
	const victim, attacker = "victim@example.com", "attacker@example.com"
	h := newHarness(t)
	h.fake.SetMailbox(victim, []fakegoogle.Message{{ID: "victim-secret-mail", Subject: "s", Date: h.clock.Now()}})
	wantStatus(t, h.login(victim), http.StatusOK)
	h.jar = map[string]string{}
	wantStatus(t, h.login(attacker), http.StatusOK)

	v := h.record(victim)
	if _, err := h.store.Update(context.Background(), h.fake.UserSub(attacker), func(cur *tokenstore.Record) (*tokenstore.Record, error) {
		next := *cur
		next.RefreshToken, next.AccessToken, next.AccessTokenExpiry = v.RefreshToken, v.AccessToken, v.AccessTokenExpiry
		return &next, nil
	}); err != nil {
		t.Fatal(err)
	}
	h.fake.ResetCounts()
	resp := h.get("/ListMessages", "Accept", jsonAccept)
	b := body(resp)
	if resp.StatusCode == http.StatusOK || strings.Contains(b, "victim-secret-mail") {
		t.Fatalf("the attacker listed with the victim's moved tokens: %d %s", resp.StatusCode, b)
	}
	if n := h.fake.Count(fakegoogle.CountGmailList) + h.fake.Count(fakegoogle.CountTokenRefresh); n != 0 {
		t.Fatalf("a moved token was opened and used at Google: %v", h.fake.Counts())
	}
}
