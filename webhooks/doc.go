// Package webhooks keeps the ledger in step with Mailchimp, Mailchimp
// Transactional (Mandrill) and CRMs: the inbound receivers under
// /webhooks/, the outbound dispatcher that delivers the store's outbox to
// each target, and the Mailchimp Marketing API sync. Of the project it
// imports optin, and internal/httpjson for the shape of its answers; cmd
// builds it from the configuration.
//
// Inbound: Receiver (receiver.go) serves mailchimp.go, mandrill.go and
// crm.go, each applied once through dedup.go. Outbound: Dispatcher
// (dispatch*.go) hands each Target its events in order per subject:
// Endpoint (outbound*.go, signed as standard.go says), Audience
// (audience.go, on the API client of mailchimpapi.go) and MandrillRejects
// (rejects.go). SyncAudience (sync.go) pulls an audience in.
package webhooks
