// Package webhooks keeps the ledger in step with Mailchimp, Mailchimp
// Transactional (Mandrill) and CRMs: the inbound receivers under
// /webhooks/, the outbound dispatcher that delivers the store's outbox to
// each target, and the Mailchimp Marketing API sync. It imports only
// optin; cmd builds it from the configuration.
package webhooks
