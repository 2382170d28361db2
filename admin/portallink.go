package admin

import (
	"net/http"
	"time"

	"optinproxy/optin"
)

// PortalLinker makes a link to a subject's personal portal: its URL and
// when it stops working. The portal's Handler.Link is one.
type PortalLinker func(a optin.Address) (url string, expires time.Time)

// portalLinkAnswer is the answer of POST .../portal-link.
type portalLinkAnswer struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// portalLink: POST /api/v1/subjects/{email}/portal-link, a link for a
// subject the ledger knows (404 otherwise), to hand to the subject.
func (a *API) portalLink(w http.ResponseWriter, r *http.Request, p principal) {
	addr, ok := pathAddress(w, r)
	if !ok {
		return
	}
	if a.opts.PortalLink == nil {
		notConfigured(w, "this server makes no portal links")
		return
	}
	if _, err := a.store.Subject(r.Context(), addr, 0); err != nil {
		a.fail(w, r, err)
		return
	}
	link, expires := a.opts.PortalLink(addr)
	// The link is a credential for the subject's data: who made one is
	// worth a line in the log.
	a.log.Info("portal link made", "subject", addr, "token", p.name)
	writeJSON(w, http.StatusOK, portalLinkAnswer{URL: link, ExpiresAt: expires.UTC()})
}
