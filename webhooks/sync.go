package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"optinproxy/optin"
)

// SyncOptions configure SyncAudience.
type SyncOptions struct {
	Client *MailchimpClient
	ListID string
	// Purpose is what the audience's subscribers consented to.
	Purpose string
	Ledger  *optin.Ledger
	// PageSize is the members read per request and applied per batch;
	// default and at most MaxMemberPage.
	PageSize int
	// Retries is how often a page that failed for a reason that may pass
	// (429, 5xx, a timeout) is asked again before the sync gives up;
	// default 5, negative for none.
	Retries int
	// Backoff is the first wait before asking again when the API named
	// none (Retry-After); it doubles each time. Default 1s.
	Backoff time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// SyncReport counts what a sync did. A member counts once: by what its
// change did, or why it made none.
type SyncReport struct {
	// Members is how many members were read.
	Members int `json:"members"`
	// Granted, Pending, Withdrawn and Suppressed count the changes
	// recorded. A subscribed member of a double opt-in purpose is
	// recorded pending: Mailchimp does not say how it opted in.
	Granted    int `json:"granted"`
	Pending    int `json:"pending"`
	Withdrawn  int `json:"withdrawn"`
	Suppressed int `json:"suppressed"`
	// Undated counts the grants without timestamp_opt (part of Granted
	// and Pending): no grant time, so they have no proof.
	Undated int `json:"undated"`
	// Unchanged counts the changes the ledger already had or holds newer.
	Unchanged int `json:"unchanged"`
	// Skipped counts the members whose status records nothing: pending
	// (not confirmed), transactional, archived.
	Skipped int `json:"skipped"`
	// Erased counts the subscribed members whose address was erased
	// here: their grants are refused (optin.ErrErased).
	Erased int `json:"erased"`
	// NoAddress counts the contacts without an email address.
	NoAddress int `json:"no_address"`
	// BadRows counts the members that could not be recorded; Bad names
	// the first maxBadRows of them.
	BadRows int          `json:"bad_rows"`
	Bad     []SyncBadRow `json:"bad,omitempty"`
}

// SyncBadRow names a member that could not be recorded: by its position
// in the audience and its Mailchimp id, never its address.
type SyncBadRow struct {
	Offset   int    `json:"offset"`
	MemberID string `json:"member_id"`
	Reason   string `json:"reason"`
}

const maxBadRows = 1000

// SyncAudience reads every member of the audience, page by page, into the
// ledger as one batch per page: subscribed grants the purpose, with
// Mailchimp's opt-in evidence; unsubscribed withdraws it; cleaned adds a
// hard_bounce suppression. It invents nothing: a member without
// timestamp_opt gets a grant without a grant time (applied only when the
// ledger has no record for it), and no grant gets a policy version.
// Changes are ordered by Mailchimp's times, so a sync run again records
// nothing new, and a newer change made here is not undone.
//
// On error the pages before stay applied; running it again is safe. The
// report counts what was done until then.
func SyncAudience(ctx context.Context, opts SyncOptions) (SyncReport, error) {
	var rep SyncReport
	switch {
	case opts.Client == nil:
		return rep, errors.New("webhooks: sync without a Mailchimp client")
	case opts.Ledger == nil:
		return rep, errors.New("webhooks: sync without a ledger")
	case opts.ListID == "":
		return rep, errors.New("webhooks: sync without a list id")
	}
	if _, err := opts.Ledger.Purposes().Get(opts.Purpose); err != nil {
		return rep, fmt.Errorf("webhooks: sync: %w", err)
	}
	if opts.PageSize <= 0 || opts.PageSize > MaxMemberPage {
		opts.PageSize = MaxMemberPage
	}
	if opts.Retries == 0 {
		opts.Retries = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	log := opts.Logger.With("component", "mailchimp-sync", "list", opts.ListID)
	s := syncer{opts: opts, source: &optin.ImportSource{File: "mailchimp:" + opts.ListID, At: opts.Now().UTC()}}
	for offset := 0; ; {
		page, err := s.page(ctx, offset)
		if err != nil {
			log.Error("mailchimp sync stopped", "offset", offset, "err", err)
			return rep, err
		}
		if err := s.apply(ctx, &rep, offset, page.Members); err != nil {
			log.Error("mailchimp sync stopped", "offset", offset, "err", err)
			return rep, err
		}
		offset += len(page.Members)
		if len(page.Members) == 0 || offset >= page.TotalItems {
			break
		}
	}
	log.Info("mailchimp sync done", "members", rep.Members, "granted", rep.Granted, "pending", rep.Pending,
		"withdrawn", rep.Withdrawn, "suppressed", rep.Suppressed, "unchanged", rep.Unchanged, "bad_rows", rep.BadRows)
	return rep, nil
}

type syncer struct {
	opts   SyncOptions
	source *optin.ImportSource
}

// page reads one page, asking again after a failure that may pass.
func (s *syncer) page(ctx context.Context, offset int) (AudiencePage, error) {
	wait := s.opts.Backoff
	for attempt := 0; ; attempt++ {
		page, err := s.opts.Client.Members(ctx, s.opts.ListID, offset, s.opts.PageSize)
		if err == nil || attempt >= s.opts.Retries || !apiRetry(err) || ctx.Err() != nil {
			return page, err
		}
		d := wait
		if after := retryAfter(err); after > 0 {
			d = after
		}
		wait *= 2
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return page, fmt.Errorf("%w (while waiting after: %w)", ctx.Err(), err)
		}
	}
}

// kinds of a member's change, for the report.
const (
	kindGrant = iota
	kindWithdraw
	kindSuppress
)

// apply records one page as one batch.
func (s *syncer) apply(ctx context.Context, rep *SyncReport, offset int, members []AudienceMember) error {
	changes := make([]optin.Change, 0, len(members))
	kinds := make([]int, 0, len(members))
	undated := make([]bool, 0, len(members))
	for i, m := range members {
		rep.Members++
		ch, kind, ok, err := s.change(m)
		switch {
		case errors.Is(err, errNoAddress):
			rep.NoAddress++
		case err != nil:
			rep.BadRows++
			if len(rep.Bad) < maxBadRows {
				rep.Bad = append(rep.Bad, SyncBadRow{Offset: offset + i, MemberID: m.ID, Reason: err.Error()})
			}
		case !ok:
			rep.Skipped++
		default:
			changes = append(changes, ch)
			kinds = append(kinds, kind)
			undated = append(undated, ch.Undated)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	results, err := s.opts.Ledger.Apply(ctx, changes)
	if err != nil {
		return fmt.Errorf("webhooks: sync: apply members %d to %d: %w", offset, offset+len(members)-1, err)
	}
	for i, r := range results {
		switch {
		case r.Refused != nil:
			rep.Erased++
		case !r.Applied:
			rep.Unchanged++
		case kinds[i] == kindWithdraw:
			rep.Withdrawn++
		case kinds[i] == kindSuppress:
			rep.Suppressed++
		default:
			if changes[i].Consent.Status == optin.StatusPending {
				rep.Pending++
			} else {
				rep.Granted++
			}
			if undated[i] {
				rep.Undated++
			}
		}
	}
	return nil
}
