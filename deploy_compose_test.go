package optinproxy_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// TestComposeFile reads docker-compose.yml as Compose would (this machine
// has no docker compose, so its YAML is checked here): Redis keeps an
// append-only file synced on every write in a volume and never evicts, two or more proxies
// built from the Dockerfile each have their configuration from
// deploy/compose/, their own data volume, the shared keys and secrets from
// files, and publish ports on loopback only; the network they trust is the
// one its containers get addresses from, without its gateway; and each
// proxy's configuration passes check-config as its container would see it.
func TestComposeFile(t *testing.T) {
	c := readYAML(t, "docker-compose.yml")
	services := mapAt(c, "services")

	redis := mapAt(services, "redis")
	cmd := " " + strings.Join(stringsAt(redis, "command"), " ") + " "
	for _, want := range []string{" --appendonly yes ", " --appendfsync always ", " --maxmemory-policy noeviction "} {
		if !strings.Contains(cmd, want) {
			t.Errorf("redis command %q lacks %q", cmd, strings.TrimSpace(want))
		}
	}
	if vol := volumeOn(t, c, redis, "/data"); vol == "" {
		t.Errorf("redis keeps /data in no named volume: its append-only file would go with the container")
	}

	var proxies []string
	for name, s := range services {
		if build, _ := s.(map[string]any)["build"].(string); build == "." {
			proxies = append(proxies, name)
		}
	}
	slices.Sort(proxies)
	if len(proxies) < 2 {
		t.Fatalf("services built from the Dockerfile: %v, want two proxies", proxies)
	}
	dataVolumes := map[string]string{}
	for _, name := range proxies {
		p := mapAt(services, name)
		data := volumeOn(t, c, p, "/var/lib/optinproxy")
		if data == "" {
			t.Errorf("%s keeps /var/lib/optinproxy in no named volume", name)
		} else if other, dup := dataVolumes[data]; dup {
			t.Errorf("%s and %s share the data volume %s: each keeps its own journal", name, other, data)
		}
		dataVolumes[data] = name
		if keys := volumeOn(t, c, p, "/var/lib/optinproxy/keys"); keys != "keys" {
			t.Errorf("%s: the keys volume is %q, want the shared volume keys", name, keys)
		}
		for _, port := range stringsAt(p, "ports") {
			if !strings.HasPrefix(port, "127.0.0.1:") {
				t.Errorf("%s publishes %q beyond the host's loopback", name, port)
			}
		}
		if !slices.Contains(stringsAt(p, "networks"), "mail") || !slices.Contains(stringsAt(p, "networks"), "store") {
			t.Errorf("%s is on networks %v, want mail and store", name, stringsAt(p, "networks"))
		}
		checkComposeProxy(t, c, name, p)
	}

	store := mapAt(mapAt(c, "networks"), "store")
	if internal, _ := store["internal"].(bool); !internal {
		t.Errorf("the network store is not internal: Redis, without a password, must be reachable by the proxies only")
	}
	ipam := mapAt(mapAt(mapAt(c, "networks"), "mail"), "ipam")
	pools, _ := ipam["config"].([]any)
	if len(pools) != 1 {
		t.Fatalf("network mail: ipam config %v, want one pool", pools)
	}
	pool := pools[0].(map[string]any)
	cfg := readYAML(t, "deploy/compose/optinproxy.yml")
	for _, p := range trustProblems(stringsAt(cfg, "smtp.trusted_networks"), fmt.Sprint(pool["ip_range"]), fmt.Sprint(pool["gateway"])) {
		t.Error("deploy/compose/optinproxy.yml: " + p)
	}
}

// checkComposeProxy runs check-config on a proxy's configuration with the
// service's environment, its container paths (/run/secrets, the volumes)
// moved into a temporary folder holding its secrets. Without the secrets
// the same check fails: the configuration needs what Compose mounts.
func checkComposeProxy(t *testing.T, c map[string]any, name string, p map[string]any) {
	t.Helper()
	bin := imageBinary(t)
	dir := t.TempDir()
	env := cleanEnv()
	target := ""
	for k, v := range mapAt(p, "environment") {
		if k == "OPTINPROXY_CONFIG" {
			target = fmt.Sprint(v)
			continue
		}
		env = append(env, k+"="+fmt.Sprint(v))
	}
	var source string
	for _, ref := range listAt(p, "configs") {
		if m, ok := ref.(map[string]any); ok && m["target"] == target {
			source = fmt.Sprint(mapAt(mapAt(c, "configs"), fmt.Sprint(m["source"]))["file"])
		}
	}
	if target == "" || !strings.HasPrefix(source, "./deploy/compose/") {
		t.Errorf("%s: OPTINPROXY_CONFIG %q is not a config from deploy/compose/ (%q)", name, target, source)
		return
	}
	raw, err := os.ReadFile(source)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(raw), "/run/secrets/", filepath.Join(dir, "run/secrets")+"/")
	text = strings.ReplaceAll(text, "/var/lib/optinproxy", filepath.Join(dir, "data"))
	config := filepath.Join(dir, "optinproxy.yml")
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env = append(env, "OPTINPROXY_CONFIG="+config)
	check := func() (int, string) {
		cmd := exec.Command(bin, "check-config")
		cmd.Dir = dir
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := check(); code != 2 || !strings.Contains(out, "/run/secrets/") {
		t.Errorf("%s without its secrets: check-config exit %d, want 2 naming the missing secret\n%s", name, code, out)
	}
	secrets := mapAt(c, "secrets")
	for _, s := range stringsAt(p, "secrets") {
		file := fmt.Sprint(mapAt(secrets, s)["file"])
		if !strings.HasPrefix(file, "./deploy/compose/secrets/") {
			t.Errorf("%s: secret %s comes from %q, want a file in deploy/compose/secrets/", name, s, file)
		}
		path := filepath.Join(dir, "run/secrets", s)
		os.MkdirAll(filepath.Dir(path), 0o700)
		if err := os.WriteFile(path, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if code, out := check(); code != 0 || !strings.HasSuffix(strings.TrimSpace(out), ": ok") {
		t.Errorf("%s: check-config exit %d\n%s", name, code, out)
	}
}

// trustProblems says what is wrong with trusting the prefixes trusted on
// a network whose containers get addresses from ipRange and whose gateway
// (where published ports arrive from) is gateway.
func trustProblems(trusted []string, ipRange, gateway string) []string {
	r, err := netip.ParsePrefix(ipRange)
	if err != nil {
		return []string{fmt.Sprintf("the network's ip_range %q: %v", ipRange, err)}
	}
	gw, err := netip.ParseAddr(gateway)
	if err != nil {
		return []string{fmt.Sprintf("the network's gateway %q: %v", gateway, err)}
	}
	if r.Contains(gw) {
		return []string{fmt.Sprintf("the gateway %s lies in ip_range %s", gw, r)}
	}
	if len(trusted) == 0 {
		return []string{"smtp.trusted_networks is empty: no container of the network may relay"}
	}
	var problems []string
	for _, s := range trusted {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			problems = append(problems, fmt.Sprintf("trusted %q: %v", s, err))
			continue
		}
		if p.Contains(gw) {
			problems = append(problems, fmt.Sprintf("trusted %s holds the gateway %s: clients through published ports would relay", p, gw))
		}
		if !r.Contains(p.Addr()) || p.Bits() < r.Bits() {
			problems = append(problems, fmt.Sprintf("trusted %s reaches beyond the network's containers (%s)", p, r))
		}
	}
	return problems
}

// TestTrustProblems: the check catches a trust that reaches the gateway or
// beyond the network, and lets the compose file's own be.
func TestTrustProblems(t *testing.T) {
	for _, tc := range []struct {
		trusted []string
		want    string // "" for none
	}{
		{[]string{"172.30.25.128/25"}, ""},                              // the containers' range
		{[]string{"172.30.25.200/32"}, ""},                              // one container
		{[]string{"172.30.25.0/24"}, "holds the gateway"},               // the whole subnet
		{[]string{"0.0.0.0/0"}, "holds the gateway"},                    // everyone
		{[]string{"10.0.0.0/8"}, "reaches beyond"},                      // another network
		{[]string{"172.30.25.128/25", "127.0.0.0/8"}, "reaches beyond"}, // loopback of the container
		{nil, "empty"}, // nobody relays
		{[]string{"not-a-prefix"}, "not-a-prefix"}, // a typing error
	} {
		got := strings.Join(trustProblems(tc.trusted, "172.30.25.128/25", "172.30.25.1"), "; ")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("trustProblems(%q) = %q, want %q", tc.trusted, got, tc.want)
		}
	}
}

// volumeOn is the named volume a service mounts on path, "" when none; a
// named volume not declared at the top level is an error.
func volumeOn(t *testing.T, c, service map[string]any, path string) string {
	t.Helper()
	for _, v := range stringsAt(service, "volumes") {
		src, dst, _ := strings.Cut(v, ":")
		dst, _, _ = strings.Cut(dst, ":")
		if dst != path {
			continue
		}
		if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
			return ""
		}
		if _, ok := mapAt(c, "volumes")[src]; !ok {
			t.Errorf("volume %s is not declared under volumes", src)
		}
		return src
	}
	return ""
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// valueAt follows a dotted path of mapping keys.
func valueAt(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func mapAt(m map[string]any, path string) map[string]any {
	v, _ := valueAt(m, path).(map[string]any)
	return v
}

func listAt(m map[string]any, path string) []any {
	v, _ := valueAt(m, path).([]any)
	return v
}

func stringAt(m map[string]any, path string) string {
	v, _ := valueAt(m, path).(string)
	return v
}

// stringsAt is a list of scalars as strings.
func stringsAt(m map[string]any, path string) []string {
	var out []string
	for _, v := range listAt(m, path) {
		out = append(out, fmt.Sprint(v))
	}
	return out
}
