package unsubscribe

import (
	"sync/atomic"

	"optinproxy/optin"
)

// purposeSet holds the purposes the pages name and accept; a reload
// replaces them whole, and a request reads them once with one atomic load.
type purposeSet struct {
	p atomic.Pointer[optin.Purposes]
}

func newPurposeSet(ps optin.Purposes) *purposeSet {
	s := &purposeSet{}
	s.p.Store(&ps)
	return s
}

func (s *purposeSet) get() optin.Purposes { return *s.p.Load() }

// SetPurposes puts ps in force for the requests from now on (a
// configuration reload): a link of a purpose added works, one of a purpose
// removed unsubscribes from all marketing. ps must not be changed
// afterwards. Safe for concurrent use.
func (h *Handler) SetPurposes(ps optin.Purposes) { h.purposes.p.Store(&ps) }

// SetPurposes puts ps in force for the requests from now on: a link of a
// purpose removed is answered as gone. ps must not be changed afterwards.
// Safe for concurrent use.
func (h *ConfirmHandler) SetPurposes(ps optin.Purposes) { h.purposes.p.Store(&ps) }
