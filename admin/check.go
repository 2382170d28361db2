package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"optinproxy/optin"
)

// MaxCheck is how many addresses one list check takes.
const MaxCheck = 10_000

// ReasonInvalidAddress is the check's reason for an address that does
// not parse; the relay refuses such an address at RCPT.
const ReasonInvalidAddress = "invalid_address"

type checkResult struct {
	Email    string `json:"email"`
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
	// Error is why an address did not parse.
	Error string `json:"error,omitempty"`
}

type checkJSON struct {
	Purpose string `json:"purpose"`
	// Mode is policy.mode: in "monitor" the relay sends to the blocked
	// addresses too, and only records that they were blocked.
	Mode    string        `json:"mode"`
	Results []checkResult `json:"results"`
}

// errTooMany is a check of more than MaxCheck addresses.
var errTooMany = fmt.Errorf("a check takes at most %d addresses; send the list in batches of %d", MaxCheck, MaxCheck)

// check answers POST /api/v1/check: for {"purpose": P, "emails": [...]}
// each address's decision and reason, in the order given, as the relay
// would decide a message of purpose P to it now (optin.Decide, the same
// role addresses), recording nothing, with one Store.Lookup for the
// whole batch. An address that does not parse is blocked as
// invalid_address; a repeated one is answered each time.
func (a *API) check(w http.ResponseWriter, r *http.Request, _ principal) {
	purpose, emails, err := decodeCheck(r.Body)
	switch {
	case errors.Is(err, errTooMany):
		writeError(w, http.StatusRequestEntityTooLarge, "too_many", err.Error())
		return
	case err != nil:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			tooLarge(w, mbe.Limit, fmt.Sprintf(" (%d addresses)", MaxCheck))
			return
		}
		badRequest(w, `the body must be {"purpose": "...", "emails": ["...", ...]}: `+err.Error())
		return
	}
	p, ok := a.ledger.Purposes()[purpose]
	if !ok {
		what := "unknown purpose: " + a.ledger.Purposes().Unknown(purpose)
		if purpose == "" {
			what = "purpose is required; the purposes are: " + strings.Join(a.ledger.Purposes().Names(), ", ")
		}
		writeError(w, http.StatusBadRequest, "unknown_purpose", what)
		return
	}
	ans := checkJSON{Purpose: p.Name, Mode: "enforce", Results: make([]checkResult, len(emails))}
	if a.opts.Monitor {
		ans.Mode = "monitor"
	}
	// Each distinct address is looked up once; at[i] is the lookup index
	// of emails[i], -1 for one that does not parse.
	var addrs []optin.Address
	index := map[optin.Address]int{}
	at := make([]int, len(emails))
	for i, s := range emails {
		ans.Results[i].Email = s
		addr, err := optin.ParseAddress(s)
		if err != nil {
			at[i] = -1
			ans.Results[i] = checkResult{Email: s, Decision: "block", Reason: ReasonInvalidAddress, Error: err.Error()}
			continue
		}
		j, seen := index[addr]
		if !seen {
			j = len(addrs)
			index[addr] = j
			addrs = append(addrs, addr)
		}
		at[i] = j
	}
	var sts []optin.Standing
	if len(addrs) > 0 {
		if sts, err = a.store.Lookup(r.Context(), optin.LookupQuery{Purpose: p.Name, Addresses: addrs}); err != nil {
			a.fail(w, r, err)
			return
		}
		if len(sts) != len(addrs) {
			a.fail(w, r, fmt.Errorf("lookup returned %d standings for %d addresses", len(sts), len(addrs)))
			return
		}
	}
	now, roles := a.opts.Now(), a.roles.Load()
	decided := make([]*optin.Decision, len(addrs))
	for i, j := range at {
		if j < 0 {
			continue
		}
		if decided[j] == nil {
			d := optin.Decide(p, sts[j], roles.Is(sts[j].Address), now)
			decided[j] = &d
		}
		ans.Results[i].Decision, ans.Results[i].Reason = decided[j].Verb(), string(decided[j].Reason)
	}
	writeJSON(w, http.StatusOK, ans)
}

// decodeCheck reads the check's body as a stream, so that a list over
// MaxCheck is refused at its first address too many rather than held
// whole. Unknown fields are an error, as a misspelt "emails" would
// otherwise check nothing.
func decodeCheck(body io.Reader) (string, []string, error) {
	dec := json.NewDecoder(body)
	if err := expectDelim(dec, '{'); err != nil {
		return "", nil, err
	}
	var purpose string
	emails := []string{}
	seen := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", nil, err
		}
		switch t {
		case "purpose":
			if err := dec.Decode(&purpose); err != nil {
				return "", nil, fmt.Errorf("purpose: %w", err)
			}
		case "emails":
			seen = true
			if err := expectDelim(dec, '['); err != nil {
				return "", nil, fmt.Errorf("emails: %w", err)
			}
			for dec.More() {
				if len(emails) == MaxCheck {
					return "", nil, errTooMany
				}
				var s string
				if err := dec.Decode(&s); err != nil {
					return "", nil, fmt.Errorf("emails[%d]: %w", len(emails), err)
				}
				emails = append(emails, s)
			}
			if err := expectDelim(dec, ']'); err != nil {
				return "", nil, err
			}
		default:
			return "", nil, fmt.Errorf("unknown field %v", t)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return "", nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, errors.New("data after the object")
	}
	if !seen {
		return "", nil, errors.New("no emails list")
	}
	return purpose, emails, nil
}

// expectDelim reads the next token and checks that it is want.
func expectDelim(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, found %v", want, t)
	}
	return nil
}
