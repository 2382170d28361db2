package webhooks

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"optinproxy/optin"
)

// standardWebhooksVersion is the official Node package the signatures are
// checked against; pinned so that the cross-check does not move by itself.
const standardWebhooksVersion = "1.1.1"

var (
	nodeOnce sync.Once
	nodeDir  string
	nodeErr  string
)

// nodeStandardWebhooks returns the folder holding node_modules/standardwebhooks,
// installing the pinned version with npm into the user's cache (once per
// machine) or, without one, into a temporary folder. It skips the test only
// when node or npm is not installed; an npm failure fails it.
func nodeStandardWebhooks(t testing.TB) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the cross-check against the standardwebhooks Node package needs node and npm", tool)
		}
	}
	nodeOnce.Do(func() {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir := filepath.Join(base, "optinproxy-test", "standardwebhooks-"+standardWebhooksVersion)
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks", "package.json")); err == nil {
			nodeDir = dir
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			nodeErr = err.Error()
			return
		}
		cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", dir, "standardwebhooks@"+standardWebhooksVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			nodeErr = "npm install standardwebhooks: " + err.Error() + "\n" + string(out)
			return
		}
		nodeDir = dir
	})
	if nodeErr != "" {
		t.Fatal(nodeErr)
	}
	return nodeDir
}

// nodeMessage is a message for the Node package to sign.
type nodeMessage struct {
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
	Payload   string `json:"payload"`
}

// nodeSigned is a signed request for the Node package to verify.
type nodeSigned struct {
	Headers map[string]string `json:"headers"`
	Payload string            `json:"payload"`
}

// signedFromHeader is the request of h and body as nodeSigned.
func signedFromHeader(h http.Header, body []byte) nodeSigned {
	return nodeSigned{
		Headers: map[string]string{
			HeaderID:        h.Get(HeaderID),
			HeaderTimestamp: h.Get(HeaderTimestamp),
			HeaderSignature: h.Get(HeaderSignature),
		},
		Payload: string(body),
	}
}

// runNode signs sign and verifies verify with the official package; it
// returns the signatures and, per verified request, "" or the package's
// error. Its verify checks timestamps against the real clock.
func runNode(t testing.TB, secret string, sign []nodeMessage, verify []nodeSigned) (sigs []string, verified []string) {
	t.Helper()
	dir := nodeStandardWebhooks(t)
	req, err := json.Marshal(map[string]any{"secret": secret, "sign": sign, "verify": verify})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join("testdata", "standardwebhooks.js"))
	cmd.Env = append(os.Environ(), "STANDARDWEBHOOKS_DIR="+dir)
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var res struct {
		Signatures []string `json:"signatures"`
		Verified   []string `json:"verified"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	return res.Signatures, res.Verified
}

// TestCRMReceiverTakesNodeSignatures: a CRM that signs with the official
// Node package is heard: its signed event is applied; the same event
// signed with another secret, or long ago, is refused with 401 and
// records nothing.
func TestCRMReceiverTakesNodeSignatures(t *testing.T) {
	f := newFixture(t, fileStore(t), nil)
	body := `{"type":"consent.granted","email":"node@example.com","purpose":"newsletter"}`
	now := time.Now().Unix()
	other := "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	good, _ := runNode(t, testCRMSecret, []nodeMessage{{ID: "msg_node_1", Timestamp: now, Payload: body}, {ID: "msg_node_3", Timestamp: now - 3600, Payload: body}}, nil)
	wrong, _ := runNode(t, other, []nodeMessage{{ID: "msg_node_2", Timestamp: now, Payload: body}}, nil)
	header := func(id string, ts int64, sig string) http.Header {
		return http.Header{HeaderID: {id}, HeaderTimestamp: {strconv.FormatInt(ts, 10)}, HeaderSignature: {sig}}
	}
	if r := f.crm(body, header("msg_node_2", now, wrong[0])); r.status != http.StatusUnauthorized {
		t.Errorf("another secret's signature: %d %s", r.status, r.body)
	}
	if r := f.crm(body, header("msg_node_3", now-3600, good[1])); r.status != http.StatusUnauthorized {
		t.Errorf("an hour-old signature: %d %s", r.status, r.body)
	}
	if n := f.eventCount(); n != 0 {
		t.Fatalf("%d events recorded from refused deliveries", n)
	}
	if r := f.crm(body, header("msg_node_1", now, good[0])); r.status != http.StatusOK {
		t.Fatalf("the Node-signed event: %d %s", r.status, r.body)
	}
	if c := f.consent("node@example.com", "newsletter"); c == nil || c.Status != optin.StatusGranted {
		t.Errorf("consent = %+v", c)
	}
}
