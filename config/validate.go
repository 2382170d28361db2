package config

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"
)

// validate checks the decoded configuration in one pass, adding a problem
// for every bad value rather than stopping at the first: check-config shows
// them all. Keys that failed to decode are not reported twice.
func (l *loader) validate(c *Config) {
	l.checkSMTP(c)
	l.checkUpstream(&c.Upstream)
	l.checkHTTP(&c.HTTP)
	l.checkStore(&c.Store)
	l.checkPolicy(c)
	l.checkPurposes(c.Purposes)
	l.checkUnsubscribe(&c.Unsubscribe)
	l.checkNotices(&c.Notices)
	l.checkAdmin(c.Admin.Tokens)
	l.checkWebhooks(c)
	l.checkDKIM(c.DKIM)
}

func (l *loader) checkHostPort(key, v string, required bool) {
	if v == "" {
		if required {
			l.invalid(key, "must be set, as host:port")
		}
		return
	}
	if err := checkHostPort(v); err != nil {
		l.invalid(key, err.Error())
	}
}

func (l *loader) checkPositive(key string, n int64) {
	if n <= 0 {
		l.invalid(key, "must be > 0")
	}
}

func (l *loader) checkSMTP(c *Config) {
	s := &c.SMTP
	l.checkHostPort("smtp.listen", s.Listen, true)
	l.checkHostPort("smtp.tls_listen", s.TLSListen, false)
	if s.Hostname == "" || strings.ContainsAny(s.Hostname, " \t\r\n") {
		l.invalid("smtp.hostname", fmt.Sprintf("want the name the relay greets with, got %q", s.Hostname))
	}
	switch cert, key := s.TLS.CertFile, s.TLS.KeyFile; {
	case cert != "" && key == "":
		l.invalid("smtp.tls.key_file", "must be set when smtp.tls.cert_file is")
	case cert == "" && key != "":
		l.invalid("smtp.tls.cert_file", "must be set when smtp.tls.key_file is")
	case cert != "":
		if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
			l.invalid("smtp.tls.cert_file", "cannot load the certificate and key: "+err.Error())
		}
	case s.TLSListen != "":
		l.invalid("smtp.tls_listen", "needs smtp.tls.cert_file and smtp.tls.key_file")
	}
	for i, n := range s.TrustedNetworks {
		if _, err := parsePrefix(n); err != nil {
			l.invalid(index("smtp.trusted_networks", i), err.Error())
		}
	}
	l.checkPositive("smtp.max_message_bytes", s.MaxMessageBytes)
	l.checkPositive("smtp.max_recipients", int64(s.MaxRecipients))
	l.checkPositive("smtp.max_connections", int64(s.MaxConnections))
	l.checkPositive("smtp.max_connections_per_ip", int64(s.MaxConnectionsPerIP))
	l.checkPositive("smtp.max_inflight_bytes", s.MaxInflightBytes)
	// A message is read into a buffer a little larger than itself.
	if need := s.MaxMessageBytes + 64<<10; s.MaxMessageBytes > 0 && s.MaxInflightBytes > 0 && s.MaxInflightBytes < need {
		l.invalid("smtp.max_inflight_bytes", fmt.Sprintf("must be at least smtp.max_message_bytes plus 64 KiB (%d): a message of the largest size could never be relayed", need))
	}
	l.checkPositive("smtp.read_timeout", int64(s.ReadTimeout))
	l.checkPositive("smtp.write_timeout", int64(s.WriteTimeout))

	seen := map[string]int{}
	for i, u := range s.Users {
		key := index("smtp.users", i)
		switch j, dup := seen[u.Username]; {
		case u.Username == "":
			l.invalid(key+".username", "must be set")
		case dup:
			l.invalid(key+".username", fmt.Sprintf("%q is already used by smtp.users[%d]", u.Username, j))
		default:
			seen[u.Username] = i
		}
		if u.PasswordHash == "" {
			l.invalid(key+".password_hash", "must be set (make one with: optinproxy hash-password)")
		} else if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			l.invalid(key+".password_hash", "not a bcrypt hash (make one with: optinproxy hash-password)")
		}
		for j, p := range u.Purposes {
			l.checkPurposeName(index(key+".purposes", j), p, c.Purposes)
		}
		if u.DefaultPurpose != "" {
			l.checkPurposeName(key+".default_purpose", u.DefaultPurpose, c.Purposes)
			if len(u.Purposes) > 0 && !oneOf(u.DefaultPurpose, u.Purposes) {
				l.invalid(key+".default_purpose", fmt.Sprintf("%q is not among the user's purposes", u.DefaultPurpose))
			}
		}
		for j, d := range u.FromDomains {
			if !isDomain(d) {
				l.invalid(index(key+".from_domains", j), fmt.Sprintf("want a domain name such as example.com, got %q", d))
			}
		}
	}
}

func (l *loader) checkUpstream(u *Upstream) {
	if _, _, err := u.Target(); err != nil {
		l.invalid("upstream.url", err.Error())
	}
	if !oneOf(u.StartTLS, startTLS) {
		l.invalid("upstream.starttls", mustBeOneOf(u.StartTLS, startTLS))
	}
	switch {
	case u.Username != "" && u.PasswordFile == "":
		l.invalid("upstream.password_file", "must be set when upstream.username is")
	case u.Username == "" && u.PasswordFile != "":
		l.invalid("upstream.username", "must be set when upstream.password_file is")
	}
	// The relay has no "off" for these: 0 would silently mean its
	// built-in 24h and 20, so it is refused rather than misread.
	if u.DedupWindow <= 0 {
		l.invalid("upstream.dedup_window", "must be more than 0: within it a CRM's retry reaches only the recipients that did not get the message (24h is usual)")
	}
	l.checkPositive("upstream.timeout", int64(u.Timeout))
	if u.PoolSize <= 0 {
		l.invalid("upstream.pool_size", "must be at least 1 (the most upstream connections open at once)")
	}
}

func (l *loader) checkHTTP(h *HTTP) {
	l.checkHostPort("http.listen", h.Listen, true)
	for i, n := range h.TrustedProxies {
		if _, err := parsePrefix(n); err != nil {
			l.invalid(index("http.trusted_proxies", i), err.Error())
		}
	}
	if err := checkHTTPURL(h.PublicURL); err != nil {
		l.invalid("http.public_url", err.Error())
	}
}

func (l *loader) checkStore(s *Store) {
	r := &s.Redis
	if r.URL != "" {
		if !strings.HasPrefix(r.URL, "redis://") && !strings.HasPrefix(r.URL, "rediss://") {
			l.invalid("store.redis.url", "want redis://host:port/db or rediss:// for TLS")
		} else if o, err := redis.ParseURL(r.URL); err != nil {
			l.invalid("store.redis.url", err.Error())
		} else if o.DB != 0 && len(r.ClusterAddrs) > 0 {
			// Otherwise the database would be dropped without a word.
			l.invalid("store.redis.url", fmt.Sprintf("a Redis Cluster has only database 0, not %d: end the url with /0 or no database", o.DB))
		}
	}
	sentinel := r.Sentinel.Master != "" || len(r.Sentinel.Addrs) > 0
	// Beside sentinel or cluster_addrs, url carries only the credentials,
	// TLS and database for the nodes they lead to; its host is not used.
	if sentinel && len(r.ClusterAddrs) > 0 {
		l.invalid("store.redis", "set only one of sentinel and cluster_addrs")
	}
	if sentinel {
		if r.Sentinel.Master == "" {
			l.invalid("store.redis.sentinel.master", "must be set when sentinel addrs are")
		}
		if len(r.Sentinel.Addrs) == 0 {
			l.invalid("store.redis.sentinel.addrs", "must list the sentinels when master is set")
		}
	}
	for i, a := range r.Sentinel.Addrs {
		l.checkHostPort(index("store.redis.sentinel.addrs", i), a, true)
	}
	for i, a := range r.ClusterAddrs {
		l.checkHostPort(index("store.redis.cluster_addrs", i), a, true)
	}
	if s.Path == "" && r.URL == "" && !sentinel && len(r.ClusterAddrs) == 0 {
		l.invalid("store.path", "must be set when no Redis is configured")
	}
}

func index(key string, i int) string { return key + "[" + strconv.Itoa(i) + "]" }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
