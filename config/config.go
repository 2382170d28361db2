// Package config reads optinproxy's YAML configuration: the
// defaults, a strict decode that names the line of every unknown key, the
// environment overrides by key path, the *_file secrets, and one validation
// pass that reports every problem at once. Only cmd/optinproxy imports it.
package config

// Config is the whole file. Every field has its documented default after
// Default; Load fills it from a file and the environment.
type Config struct {
	SMTP        SMTP               `yaml:"smtp"`
	Upstream    Upstream           `yaml:"upstream"`
	HTTP        HTTP               `yaml:"http"`
	Store       Store              `yaml:"store"`
	Policy      Policy             `yaml:"policy"`
	Purposes    map[string]Purpose `yaml:"purposes"`
	Unsubscribe Unsubscribe        `yaml:"unsubscribe"`
	Notices     Notices            `yaml:"notices"`
	Controller  Controller         `yaml:"controller"`
	Admin       Admin              `yaml:"admin"`
	Webhooks    Webhooks           `yaml:"webhooks"`
	DKIM        []DKIM             `yaml:"dkim"`

	// ledgerKeyInEnv is set by Load when the ledger key comes from
	// OPTINPROXY_LEDGER_KEY, so that no key file is written or read.
	ledgerKeyInEnv bool
}

type SMTP struct {
	Listen          string   `yaml:"listen"`
	TLSListen       string   `yaml:"tls_listen"`
	Hostname        string   `yaml:"hostname"`
	TLS             TLS      `yaml:"tls"`
	TrustedNetworks []string `yaml:"trusted_networks"`
	MaxMessageBytes int64    `yaml:"max_message_bytes"`
	MaxRecipients   int      `yaml:"max_recipients"`
	// MaxConnections and MaxConnectionsPerIP bound the SMTP connections
	// open at once, in all and per client address (IPv6: per /64).
	MaxConnections      int `yaml:"max_connections"`
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// MaxInflightBytes bounds the message bytes held at once.
	MaxInflightBytes int64 `yaml:"max_inflight_bytes"`
	BlockedDSN       bool  `yaml:"blocked_dsn"`
	// ReadTimeout and WriteTimeout bound each SMTP command read and reply
	// written; every relay needs them.
	ReadTimeout  Duration `yaml:"read_timeout"`
	WriteTimeout Duration `yaml:"write_timeout"`
	Users        []User   `yaml:"users"`
}

type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

type User struct {
	Username       string   `yaml:"username"`
	PasswordHash   string   `yaml:"password_hash"`
	DefaultPurpose string   `yaml:"default_purpose"`
	Purposes       []string `yaml:"purposes"`
	FromDomains    []string `yaml:"from_domains"`
}

type Upstream struct {
	URL          string `yaml:"url"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// Password is read from PasswordFile by Load; never in YAML.
	Password    string   `yaml:"-"`
	StartTLS    string   `yaml:"starttls"`
	DedupWindow Duration `yaml:"dedup_window"`
	// Timeout bounds one upstream conversation step (dial, command, data).
	Timeout Duration `yaml:"timeout"`
	// PoolSize bounds the upstream connections open at once, busy or idle.
	PoolSize int `yaml:"pool_size"`
}

type HTTP struct {
	Listen    string `yaml:"listen"`
	PublicURL string `yaml:"public_url"`
	// TrustedProxies are the reverse proxies (CIDR, or one address) whose
	// X-Forwarded-For names the client: behind one, the evidence of a page
	// and the portal's per-client limit would otherwise see the proxy.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

type Store struct {
	Path string `yaml:"path"`
	// KeyFile holds the ledger key; "" means ledger.key in Path (see
	// Store.KeyPath). OPTINPROXY_LEDGER_KEY may carry the key instead.
	KeyFile string `yaml:"key_file"`
	Redis   Redis  `yaml:"redis"`
}

type Redis struct {
	URL          string   `yaml:"url"`
	Sentinel     Sentinel `yaml:"sentinel"`
	ClusterAddrs []string `yaml:"cluster_addrs"`
	KeyPrefix    string   `yaml:"key_prefix"`
}

type Sentinel struct {
	Master string   `yaml:"master"`
	Addrs  []string `yaml:"addrs"`
}

type Policy struct {
	Mode           string `yaml:"mode"`
	DefaultPurpose string `yaml:"default_purpose"`
	CurrentVersion string `yaml:"current_version"`
	// ReceiptRetention is how long message receipts are kept.
	ReceiptRetention Duration      `yaml:"receipt_retention"`
	RoleAddresses    RoleAddresses `yaml:"role_addresses"`
	// RetentionNotice is how long before a consent expires that its
	// consent.expiring event is recorded (and sent to the webhooks), so
	// that a CRM can ask for renewal.
	RetentionNotice Duration `yaml:"retention_notice"`
	// PendingExpiry is how long a double opt-in stays pending before it
	// is marked expired; its confirmation link stops working then too.
	PendingExpiry Duration `yaml:"pending_expiry"`
	// PortalLinkTTL is how long a portal link works after it was made.
	PortalLinkTTL Duration `yaml:"portal_link_ttl"`
}

// Notices configure the mail the proxy sends itself: double opt-in
// confirmations and portal links. They go through the upstream.
type Notices struct {
	// From is their sender; "" means noreply@ and smtp.hostname.
	From string `yaml:"from"`
	// ReplyTo, when set, is where replies go (the privacy officer).
	ReplyTo string `yaml:"reply_to"`
}

// Controller names the controller of the processing in the record of
// processing (GDPR art. 30); every field may stay empty.
type Controller struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	Contact string `yaml:"contact"`
	// DPO is how to reach the data protection officer, if there is one.
	DPO string `yaml:"dpo"`
}

type RoleAddresses struct {
	Add    []string `yaml:"add"`
	Remove []string `yaml:"remove"`
}

// Purpose is one entry of the purposes map. The file's entries are added
// to the built-in purposes by name, an entry named like a built-in
// changing only the fields it sets; Load drops the entries whose Enabled
// is false, so every purpose of a loaded Config is in use.
type Purpose struct {
	// Enabled false removes the purpose, a built-in one too; nil is true.
	Enabled     *bool    `yaml:"enabled"`
	Basis       string   `yaml:"basis"`
	Category    string   `yaml:"category"`
	Retention   Duration `yaml:"retention"`
	DoubleOptIn bool     `yaml:"double_opt_in"`
	// Unsubscribe is nil when unset: the default depends on Category.
	Unsubscribe   *bool  `yaml:"unsubscribe"`
	RoleAddresses string `yaml:"role_addresses"`
	Description   string `yaml:"description"`
}

type Unsubscribe struct {
	SecretFile      string   `yaml:"secret_file"`
	PreviousSecrets []string `yaml:"previous_secrets"`
	MailtoDomain    string   `yaml:"mailto_domain"`
	Language        string   `yaml:"language"`
	// Footer puts the link into every text body part of a marketing copy;
	// false adds the list headers only and leaves the body as it came.
	Footer bool `yaml:"footer"`
	// Templates override the built-in footers, by language.
	Templates map[string]FooterTemplate `yaml:"templates"`
}

// FooterTemplate is one language's footer; each text set must hold
// {{unsubscribe_url}}, and an empty one keeps the built-in text.
type FooterTemplate struct {
	Text string `yaml:"text"`
	HTML string `yaml:"html"`
}

type Admin struct {
	Tokens []Token `yaml:"tokens"`
}

type Token struct {
	Name        string   `yaml:"name"`
	TokenFile   string   `yaml:"token_file"`
	TokenSHA256 string   `yaml:"token_sha256"`
	Scopes      []string `yaml:"scopes"`
	// Token is read from TokenFile by Load; never in YAML.
	Token string `yaml:"-"`
}

type Webhooks struct {
	// DedupWindow is how long an inbound delivery's id is remembered, so
	// that a sender's retry is not applied twice.
	DedupWindow  Duration     `yaml:"dedup_window"`
	Mailchimp    Mailchimp    `yaml:"mailchimp"`
	Mandrill     Mandrill     `yaml:"mandrill"`
	CRM          CRM          `yaml:"crm"`
	Outbound     []Outbound   `yaml:"outbound"`
	Outbox       Outbox       `yaml:"outbox"`
	MailchimpAPI MailchimpAPI `yaml:"mailchimp_api"`
	MandrillAPI  MandrillAPI  `yaml:"mandrill_api"`
}

type Mailchimp struct {
	// Secret is the last path segment of the URL registered at
	// Mailchimp; SecretFile may hold it instead.
	Secret     string            `yaml:"secret"`
	SecretFile string            `yaml:"secret_file"`
	Lists      map[string]string `yaml:"lists"`
}

type Mandrill struct {
	Key     string `yaml:"key"`
	KeyFile string `yaml:"key_file"`
	URL     string `yaml:"url"`
}

type CRM struct {
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	// Tolerance is how far a delivery's webhook-timestamp may be from now.
	Tolerance Duration `yaml:"tolerance"`
}

type Outbound struct {
	URL        string   `yaml:"url"`
	Secret     string   `yaml:"secret"`
	SecretFile string   `yaml:"secret_file"`
	Events     []string `yaml:"events"`
}

// Outbox tunes the outbound dispatcher.
type Outbox struct {
	// DeadAfter is how long a delivery is retried before it goes to the
	// dead-letter list.
	DeadAfter Duration `yaml:"dead_after"`
	// RetiredFor is how long delivered and dead records are kept.
	RetiredFor Duration `yaml:"retired_for"`
}

type MailchimpAPI struct {
	APIKeyFile string `yaml:"api_key_file"`
	ListID     string `yaml:"list_id"`
	Purpose    string `yaml:"purpose"`
	// BaseURL overrides the API's address, which is otherwise taken from
	// the key's data centre (a key ending in -us6: us6.api.mailchimp.com).
	BaseURL string `yaml:"base_url"`
	// APIKey is read from APIKeyFile by Load; never in YAML.
	APIKey string `yaml:"-"`
}

// MandrillAPI keeps Mandrill's rejection list in step with the
// suppressions, when APIKeyFile is set.
type MandrillAPI struct {
	APIKeyFile string `yaml:"api_key_file"`
	BaseURL    string `yaml:"base_url"`
	// APIKey is read from APIKeyFile by Load; never in YAML.
	APIKey string `yaml:"-"`
}

type DKIM struct {
	Domain   string `yaml:"domain"`
	Selector string `yaml:"selector"`
	KeyFile  string `yaml:"key_file"`
}
