package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// client talks to a running server's admin API: the command line's
// commands other than serve, check-config and hash-password (SPEC §8).
type client struct {
	base  string
	token string
	// tokenFrom names where the token came from, for a 401.
	tokenFrom string
	http      *http.Client
}

// defaultAddr is the server of the zero-config defaults.
const defaultAddr = "http://127.0.0.1:8080"

// clientFlags adds --addr and --token to fs; call connect after parsing.
type clientFlags struct {
	addr, token *string
	envToken    string
}

func addClientFlags(fs *flag.FlagSet, e *env) clientFlags {
	return clientFlags{
		addr:     fs.String("addr", e.getenv("OPTINPROXY_ADDR"), "server address (default "+defaultAddr+", or OPTINPROXY_ADDR)"),
		token:    fs.String("token", e.getenv("OPTINPROXY_TOKEN"), "admin API token (default OPTINPROXY_TOKEN, or ./data/admin.token)"),
		envToken: e.getenv("OPTINPROXY_TOKEN"),
	}
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

// connect resolves the address and token: flags, then the environment,
// then the zero-config defaults of a server run in this folder.
func (f clientFlags) connect() (*client, error) {
	addr := *f.addr
	if addr == "" {
		addr = defaultAddr
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, usagef("--addr %q is not a server address such as %s", addr, defaultAddr)
	}
	token, from := *f.token, "--token"
	switch {
	case token == "":
		file := filepath.Join("data", "admin.token")
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, usagef("no token: give --token or OPTINPROXY_TOKEN, or run in the folder where `optinproxy serve` made data/admin.token")
		}
		token, from = strings.TrimSpace(string(b)), "./"+file
	case token == f.envToken:
		from = "OPTINPROXY_TOKEN"
	}
	return &client{base: strings.TrimRight(u.String(), "/"), token: token, tokenFrom: from, http: &http.Client{Timeout: 5 * time.Minute}}, nil
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
