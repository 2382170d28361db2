package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"optinproxy/config"
)

// client talks to a running server's admin API: the command line's
// commands other than serve, check-config, rotate-key and hash-password.
type client struct {
	base  string
	token string
	// tokenFrom names where the token came from, for a 401.
	tokenFrom string
	http      *http.Client
}

// defaultAddr is the server of the zero-config defaults.
const defaultAddr = "http://127.0.0.1:8080"

// clientFlags adds --addr, --token and --config to fs; call connect
// after parsing.
type clientFlags struct {
	addr, token, config *string
	envToken            string
	// scope is what the command's requests need: a --config token is
	// chosen by it.
	scope   string
	environ []string
}

func addClientFlags(fs *flag.FlagSet, e *env, scope string) clientFlags {
	return clientFlags{
		addr:     fs.String("addr", e.getenv("OPTINPROXY_ADDR"), "server address (default OPTINPROXY_ADDR, else http.listen of --config or of OPTINPROXY_HTTP_LISTEN, else "+defaultAddr+")"),
		token:    fs.String("token", e.getenv("OPTINPROXY_TOKEN"), "admin API token (default OPTINPROXY_TOKEN, else the first admin.tokens token_file of --config with scope "+scope+", else admin.token in store.path, ./data by default)"),
		config:   fs.String("config", e.getenv("OPTINPROXY_CONFIG"), "the server's configuration file, for its address and a token (default OPTINPROXY_CONFIG)"),
		envToken: e.getenv("OPTINPROXY_TOKEN"),
		scope:    scope,
		environ:  e.environ,
	}
}

// suppressScope is the scope suppress VERB needs; removing an erased
// suppression needs erase, set once --reason is parsed.
func suppressScope(verb string) string {
	if verb == "list" {
		return "read"
	}
	return "write"
}

// outboxScope is the scope outbox VERB needs.
func outboxScope(verb string) string {
	if verb == "replay" {
		return "write"
	}
	return "read"
}

// parseConnect parses args, wants exactly n positional arguments (usage
// names them otherwise) and connects: the start of most API commands.
func (f clientFlags) parseConnect(fs *flag.FlagSet, args []string, n int, usage string) (*client, []string, error) {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(pos) != n {
		return nil, nil, usageError{usage}
	}
	c, err := f.connect()
	if err != nil {
		return nil, nil, err
	}
	return c, pos, nil
}

// connect resolves the address and token. Each comes from the first of:
// its flag, its environment variable, then the configuration the server
// would run on: the --config file, else the defaults with the
// OPTINPROXY_ variables, so that a shell that set OPTINPROXY_HTTP_LISTEN
// for serve reaches it too.
func (f clientFlags) connect() (*client, error) {
	addr, token, from := *f.addr, *f.token, "--token"
	if token != "" && token == f.envToken {
		from = "OPTINPROXY_TOKEN"
	}
	tokenFile := filepath.Join("data", "admin.token")
	if addr == "" || token == "" {
		cfg, err := loadConfig(*f.config, f.environ)
		if err != nil {
			return nil, err
		}
		if addr == "" {
			addr = listenAddr(cfg.HTTP.Listen)
		}
		tokenFile = adminTokenFile(cfg)
		if token == "" && (*f.config != "" || len(cfg.Admin.Tokens) > 0) {
			source := *f.config
			if source == "" {
				source = "OPTINPROXY_ADMIN_TOKENS"
			}
			if token, from, err = configToken(cfg, source, f.scope); err != nil {
				return nil, err
			}
		}
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, usagef("--addr %q is not a server address such as %s", addr, defaultAddr)
	}
	if token == "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, usagef("no token: give --token, OPTINPROXY_TOKEN or --config with the server's configuration, or run in the folder where `optinproxy serve` made %s", tokenFile)
		}
		token, from = strings.TrimSpace(string(b)), tokenFile
		if !filepath.IsAbs(from) {
			from = "./" + from
		}
	}
	return &client{base: strings.TrimRight(u.String(), "/"), token: token, tokenFrom: from, http: &http.Client{Timeout: 5 * time.Minute}}, nil
}

// listenAddr is the address to reach a server listening on listen: a
// wildcard host is reached on loopback.
func listenAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// configToken is the first admin.tokens entry of cfg (read from path)
// that has a token_file and scope, or the server's own token when there
// are no entries, and a description of it for a 401.
func configToken(cfg *config.Config, path, scope string) (token, from string, err error) {
	if len(cfg.Admin.Tokens) == 0 {
		// The server then made its own token, with every scope, in
		// store.path.
		file := adminTokenFile(cfg)
		b, err := os.ReadFile(file)
		if err != nil {
			return "", "", usagef("%s has no admin.tokens and the token the server makes without them is not there (%v): give --token or OPTINPROXY_TOKEN, or start `optinproxy serve --config %s` first", path, err, path)
		}
		return strings.TrimSpace(string(b)), file + " (made by the server, as " + path + " has no admin.tokens)", nil
	}
	var have []string
	for i, t := range cfg.Admin.Tokens {
		if t.TokenFile == "" {
			continue
		}
		if slices.Contains(t.Scopes, scope) {
			return t.Token, fmt.Sprintf("%s (admin.tokens[%d] %q of %s)", t.TokenFile, i, t.Name, path), nil
		}
		have = append(have, fmt.Sprintf("%s [%s]", t.Name, strings.Join(t.Scopes, " ")))
	}
	if len(have) == 0 {
		return "", "", usagef("%s has no admin.tokens entry with a token_file: give --token or OPTINPROXY_TOKEN, or add a token with scope %s", path, scope)
	}
	return "", "", usagef("%s has no admin.tokens entry with a token_file and scope %s (have: %s): give --token or OPTINPROXY_TOKEN, or add %s to a token's scopes", path, scope, strings.Join(have, ", "), scope)
}

// apiError is an error answer of the API, printed as one line.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.code, e.status, e.message)
}

// do sends a request and returns the answer's body; an error answer
// becomes an *apiError.
func (c *client) do(method, path, contentType string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the server at %s (is `optinproxy serve` running?): %w", c.base, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error.Code == "" {
			return nil, &apiError{status: resp.StatusCode, code: "http_error", message: strings.TrimSpace(string(raw))}
		}
		msg := e.Error.Message
		if resp.StatusCode == http.StatusUnauthorized {
			// Most often a token of another server: say which was sent where.
			msg += fmt.Sprintf(" (the token came from %s; the server is %s)", c.tokenFrom, c.base)
		}
		return nil, &apiError{status: resp.StatusCode, code: e.Error.Code, message: msg}
	}
	return raw, nil
}

// json sends v (nil for no body) and decodes the answer into out.
func (c *client) json(method, path string, v, out any) error {
	var body io.Reader
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body = strings.NewReader(string(b))
	}
	raw, err := c.do(method, path, "application/json", body)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// subjectPath is /api/v1/subjects/{email} with the address escaped.
func subjectPath(email string) string { return "/api/v1/subjects/" + url.PathEscape(email) }
