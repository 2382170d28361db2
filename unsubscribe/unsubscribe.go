// Package unsubscribe is the recipient's way out of marketing mail: the
// tokens in unsubscribe links, the List-Unsubscribe headers and footer
// put into each marketing copy, and the pages and mail that withdraw.
package unsubscribe

import (
	"time"

	"optinproxy/optin"
)

// Claim is what an unsubscribe token carries, sealed: whom the copy went
// to, for which purpose, which message, and when the link was made.
type Claim struct {
	Subject optin.Address
	Purpose string
	// Message identifies the message (its key in the relay: the
	// Message-ID or a hash of the message); a token keeps a short hash
	// of it, so Claim.Message after Parse is that hash in hex.
	Message string
	Issued  time.Time
}
