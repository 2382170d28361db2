package optinproxy_test

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"optinproxy/internal/testtools"
)

// The tests of the files that run optinproxy as a service (Dockerfile,
// docker-compose.yml, deploy/): they build the binary as the Dockerfile
// does and run what a user would run.

// buildDir holds the binary the Dockerfile's build command makes; TestMain
// removes it.
var buildDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// imageVersion is the VERSION build argument the tests build with.
const imageVersion = "v9.8.7-test"

var built struct {
	once sync.Once
	bin  string
	err  error
}

// imageBinary builds the binary with the Dockerfile's own build command,
// once per test run. The command runs in a shell as in the builder stage,
// with /out/optinproxy pointed at a temporary folder that every user can
// read, so that it also runs as the image's unprivileged user.
func imageBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		cmdline, err := dockerfileBuildCommand("Dockerfile")
		if err != nil {
			built.err = err
			return
		}
		if buildDir, err = os.MkdirTemp("", "optinproxy-image-"); err != nil {
			built.err = err
			return
		}
		if built.err = os.Chmod(buildDir, 0o755); built.err != nil {
			return
		}
		built.bin = filepath.Join(buildDir, "optinproxy")
		cmd := exec.Command("sh", "-c", strings.Replace(cmdline, "/out/optinproxy", built.bin, 1))
		// The builder's ARGs: no target platform means this machine's.
		cmd.Env = append(os.Environ(), "VERSION="+imageVersion, "TARGETOS=", "TARGETARCH=")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("%s: %v\n%s", cmdline, err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// dockerfileBuildCommand is the shell command of the RUN instruction that
// runs go build.
func dockerfileBuildCommand(path string) (string, error) {
	for _, in := range dockerfile(path) {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			return in.args, nil
		}
	}
	return "", fmt.Errorf("%s has no RUN go build", path)
}

type instruction struct {
	cmd, args string
}

// dockerfile reads the instructions of a Dockerfile, continuation lines
// joined and comments dropped.
func dockerfile(path string) []instruction {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// TestDockerfileBuildsAStaticBinary: the Dockerfile's build command makes a
// binary with no program interpreter (so it runs on a base without libc)
// that carries the version given at build time.
func TestDockerfileBuildsAStaticBinary(t *testing.T) {
	bin := imageBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: it is dynamically linked, and the distroless static base has no libc", bin)
		}
	}
	if f.Section(".dynamic") != nil {
		t.Errorf("%s has a .dynamic section: it is not fully static", bin)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "optinproxy "+imageVersion {
		t.Errorf("optinproxy version = %q (%v), want the VERSION build argument %q", out, err, imageVersion)
	}
}

// TestDockerfileShape: the builder's Go is go.mod's, and the final stage
// is a minimal base that runs as an unprivileged user, with the
// configuration in /etc/optinproxy, the data in a volume and the ports of
// that configuration exposed.
func TestDockerfileShape(t *testing.T) {
	ins := dockerfile("Dockerfile")
	if len(ins) == 0 {
		t.Fatal("Dockerfile has no instructions")
	}
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if goVersion == nil {
		t.Fatal("go.mod names no go version")
	}
	var froms []string
	last := map[string]string{} // of the final stage
	env := map[string]string{}
	for _, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, in.args)
			last = map[string]string{}
			env = map[string]string{}
		}
		last[in.cmd] += " " + in.args
		if in.cmd == "ENV" {
			for _, kv := range strings.Fields(in.args) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		}
	}
	if len(froms) < 2 {
		t.Fatalf("FROM %q: want a builder stage and a final one", froms)
	}
	if want := "golang:" + string(goVersion[1]); !strings.Contains(froms[0], want+" ") {
		t.Errorf("the builder is %q, want %s, the Go of go.mod", froms[0], want)
	}
	if base := froms[len(froms)-1]; !strings.HasPrefix(base, "gcr.io/distroless/static") || !strings.HasSuffix(base, ":nonroot") {
		t.Errorf("the final base is %q, want distroless static, nonroot", base)
	}
	if user := strings.TrimSpace(last["USER"]); user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("the final stage runs as %q, want an unprivileged uid", user)
	}
	if !strings.Contains(last["VOLUME"], "/var/lib/optinproxy") {
		t.Errorf("VOLUME%s: want /var/lib/optinproxy", last["VOLUME"])
	}
	config := env["OPTINPROXY_CONFIG"]
	if !strings.HasPrefix(config, "/etc/optinproxy/") || !strings.Contains(last["COPY"], "deploy/docker/optinproxy.yml "+config) {
		t.Errorf("OPTINPROXY_CONFIG=%q: want the image's configuration, deploy/docker/optinproxy.yml, copied to /etc/optinproxy", config)
	}
	cfg := readYAML(t, "deploy/docker/optinproxy.yml")
	for _, key := range []string{"smtp.listen", "http.listen"} {
		addr := stringAt(cfg, key)
		host, port, _ := strings.Cut(addr, ":")
		if host != "0.0.0.0" {
			t.Errorf("deploy/docker/optinproxy.yml %s = %q: a container's listener must take connections from outside it", key, addr)
		}
		if !slicesContainsField(last["EXPOSE"], port) {
			t.Errorf("EXPOSE%s does not name the port of %s (%s)", last["EXPOSE"], key, addr)
		}
	}
	if got := stringsAt(cfg, "smtp.trusted_networks"); strings.Join(got, ",") != "127.0.0.0/8,::1/128" {
		t.Errorf("deploy/docker/optinproxy.yml smtp.trusted_networks = %q, want loopback only: the container alone", got)
	}
}

func slicesContainsField(s, field string) bool {
	for _, f := range strings.Fields(s) {
		if f == field || strings.TrimSuffix(f, "/tcp") == field {
			return true
		}
	}
	return false
}

// nonroot is the uid and gid of distroless's nonroot user.
const nonroot = 65532

// TestImageRunsAsNonRoot runs the image's binary as the image does: uid
// 65532, the image's configuration (its container paths moved into a
// temporary folder the user owns), the working directory of the image. It
// becomes ready and writes its keys as that user, readable by nobody else.
func TestImageRunsAsNonRoot(t *testing.T) {
	bin := imageBinary(t)
	if os.Geteuid() != 0 {
		t.Skip("starting a process as another uid needs root")
	}
	root := imageRoot(t, nonroot)
	srv := startBinary(t, bin, root.data, root.env(), &syscall.Credential{Uid: nonroot, Gid: nonroot})
	srv.waitReady(t)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	uids := regexp.MustCompile(`(?m)^Uid:\s+(\d+)\s+(\d+)`).FindSubmatch(status)
	if uids == nil || string(uids[1]) != "65532" || string(uids[2]) != "65532" {
		t.Errorf("the server runs as %q, want uid 65532", uids)
	}
	for _, name := range []string{"ledger.key", "unsubscribe.key", "admin.token"} {
		fi, err := os.Stat(filepath.Join(root.data, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != nonroot || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: owner %d, mode %v; want 65532, 0600", name, st.Uid, fi.Mode().Perm())
		}
	}
	// docker exec runs the command line in the image's environment: it
	// finds the generated admin token through the image's configuration.
	// (OPTINPROXY_ADDR only because the test moved the listener.)
	for _, args := range [][]string{{"consent", "grant", "jan@example.com", "newsletter"}, {"consent", "show", "jan@example.com"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = root.data
		cmd.Env = append(root.env(), "OPTINPROXY_ADDR="+srv.http)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nonroot, Gid: nonroot}}
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "newsletter") {
			t.Errorf("optinproxy %s as uid 65532: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestImageDataFolderMustBeTheUsers: the Dockerfile gives the data folder
// to the nonroot user because the server cannot start in a folder it
// cannot write; this is what a root-owned volume would do.
func TestImageDataFolderMustBeTheUsers(t *testing.T) {
	bin := imageBinary(t)
	if os.Geteuid() != 0 {
		t.Skip("starting a process as another uid needs root")
	}
	root := imageRoot(t, 0)
	cmd := exec.Command(bin, "serve")
	cmd.Dir = root.data
	cmd.Env = root.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nonroot, Gid: nonroot}}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 || !strings.Contains(string(out), "permission denied") {
		t.Errorf("serve in a folder uid 65532 cannot write: %v, want a failure naming permission denied\n%s", err, out)
	}
}

// containerRoot is a temporary stand-in for the image's file system.
type containerRoot struct {
	dir, data, config string
}

// imageRoot copies the image's configuration into a new folder, its
// /var/lib/optinproxy moved to a data folder owned by uid owner.
func imageRoot(t *testing.T, owner int) containerRoot {
	t.Helper()
	dir, err := os.MkdirTemp("", "optinproxy-root-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := containerRoot{dir: dir, data: filepath.Join(dir, "var/lib/optinproxy"), config: filepath.Join(dir, "etc/optinproxy/config.yaml")}
	raw, err := os.ReadFile("deploy/docker/optinproxy.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Dir(r.config), r.data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(r.config, []byte(strings.ReplaceAll(string(raw), "/var/lib/optinproxy", r.data)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "var"), filepath.Join(dir, "var/lib")} {
		os.Chmod(p, 0o755)
	}
	if err := os.Chown(r.data, owner, owner); err != nil {
		t.Fatal(err)
	}
	return r
}

// env is the image's environment, pointed at the copied configuration;
// the listeners move from every interface to loopback, as tests must.
func (r containerRoot) env() []string {
	return append(cleanEnv(), "OPTINPROXY_CONFIG="+r.config,
		"OPTINPROXY_SMTP_LISTEN=127.0.0.1:0", "OPTINPROXY_HTTP_LISTEN=127.0.0.1:0")
}

// cleanEnv is the test's environment without OPTINPROXY_* variables.
func cleanEnv() []string {
	return testtools.Environ("OPTINPROXY_")
}

// server is a started optinproxy serve.
type server struct {
	cmd            *exec.Cmd
	dir            string
	smtpAddr, http string
	log            *strings.Builder
	done           chan struct{}
}

// startBinary runs bin serve in dir with env (as cred, when not nil), and
// returns once it logs its listening addresses. The server is killed when
// the test ends; its log is shown when the test failed.
func startBinary(t *testing.T, bin, dir string, env []string, cred *syscall.Credential) *server {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir
	cmd.Env = env
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, dir: dir, log: &strings.Builder{}, done: make(chan struct{})}
	var mu sync.Mutex
	listening := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "listening" {
				listening <- m
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { cmd.Wait(); close(s.done) }()
	logText := func() string { mu.Lock(); defer mu.Unlock(); return s.log.String() }
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("server log:\n%s", logText())
		}
	})
	select {
	case m := <-listening:
		smtp, _ := m["smtp"].([]any)
		if len(smtp) == 0 {
			t.Fatalf("listening without an SMTP address: %v", m)
		}
		s.smtpAddr, _ = smtp[0].(string)
		s.http, _ = m["http"].(string)
	case <-s.done:
		t.Fatalf("serve exited before listening:\n%s", logText())
	case <-time.After(time.Minute):
		t.Fatalf("serve did not listen within a minute:\n%s", logText())
	}
	return s
}

// waitReady polls /readyz until it answers 200, a bounded number of times.
func (s *server) waitReady(t *testing.T) {
	t.Helper()
	var last string
	for range 200 {
		resp, err := http.Get("http://" + s.http + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("/readyz never answered 200; last: %s", last)
}
