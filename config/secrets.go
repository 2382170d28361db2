package config

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// maxSecretBytes bounds a secret file: a bigger one is a wrong path (or
// /dev/zero), not a secret.
const maxSecretBytes = 64 << 10

// readSecrets fills the fields tagged yaml:"-" from their *_file keys.
// unsubscribe.secret_file is left alone: the server creates it when it is
// missing. An unreadable or empty file is a problem on its key.
func (l *loader) readSecrets(c *Config) {
	if f := c.Upstream.PasswordFile; f != "" {
		c.Upstream.Password = l.secret("upstream.password_file", f)
	}
	for i := range c.Admin.Tokens {
		if f := c.Admin.Tokens[i].TokenFile; f != "" {
			c.Admin.Tokens[i].Token = l.secret("admin.tokens["+strconv.Itoa(i)+"].token_file", f)
		}
	}
	w := &c.Webhooks
	if f := w.MailchimpAPI.APIKeyFile; f != "" {
		w.MailchimpAPI.APIKey = l.secret("webhooks.mailchimp_api.api_key_file", f)
	}
	if f := w.MandrillAPI.APIKeyFile; f != "" {
		w.MandrillAPI.APIKey = l.secret("webhooks.mandrill_api.api_key_file", f)
	}
	l.fromFile("webhooks.mailchimp.secret", &w.Mailchimp.Secret, w.Mailchimp.SecretFile)
	l.fromFile("webhooks.mandrill.key", &w.Mandrill.Key, w.Mandrill.KeyFile)
	l.fromFile("webhooks.crm.secret", &w.CRM.Secret, w.CRM.SecretFile)
	for i := range w.Outbound {
		o := &w.Outbound[i]
		l.fromFile(index("webhooks.outbound", i)+".secret", &o.Secret, o.SecretFile)
	}
}

// fromFile fills the secret at key from its *_file, when one is given;
// the secret given both inline and as a file is a problem.
func (l *loader) fromFile(key string, secret *string, file string) {
	if file == "" {
		return
	}
	if *secret != "" {
		name := key[strings.LastIndex(key, ".")+1:]
		l.invalid(key, "set either "+name+" or "+name+"_file, not both")
		return
	}
	*secret = l.secret(key+"_file", file)
}

// secret reads the secret of the *_file key from path. A file that cannot
// be read is a problem at key, and the secret it holds (key without
// "_file") is not validated again: it is not missing but unreadable, and
// "must be set" would only repeat the problem.
func (l *loader) secret(key, path string) string {
	s, err := readSecret(path)
	if err != nil {
		l.invalid(key, err.Error())
		l.failed[strings.TrimSuffix(key, "_file")] = true
	}
	return s
}

// readSecret returns the file's text without surrounding whitespace (the
// newline an editor or `echo` adds is not part of the secret).
func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read secret: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
	if err != nil {
		return "", fmt.Errorf("cannot read secret: %w", err)
	}
	if len(b) > maxSecretBytes {
		return "", fmt.Errorf("secret file %s is larger than %d KiB", path, maxSecretBytes>>10)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}
