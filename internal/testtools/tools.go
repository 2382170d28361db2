// Package testtools finds the outside programs that tests drive (swaks,
// redis-server, chromium) and installs the Debian package that holds one when
// it is missing, so that a fresh machine runs the same tests as a prepared
// one. Only tests and test helpers import it.
package testtools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// aptTimeout bounds one apt-get run; an update and two installs may run.
const aptTimeout = 5 * time.Minute

// lockPath is shared by every test binary on the machine: go test runs
// packages in parallel, and apt-get refuses to run twice at once.
var lockPath = filepath.Join(os.TempDir(), "optinproxy-testtools-apt.lock")

// sbinDirs are searched after PATH, which may lack them for non-root users.
var sbinDirs = []string{"/usr/local/sbin", "/usr/sbin", "/sbin"}

var (
	installsMu sync.Mutex
	installs   = map[string]*install{} // by Debian package
)

// install is one package's installation, run at most once per process.
type install struct {
	once sync.Once
	err  error
}

// Need returns the path of the program binary, first installing the Debian
// package debianPackage when binary is not found. Each package is installed
// at most once per process, and one test binary at a time runs apt-get. When
// the program cannot be found or installed, Need fails the test with
// t.Fatal, naming the package to install by hand. Safe for concurrent use.
func Need(t testing.TB, binary, debianPackage string) string {
	t.Helper()
	path, err := Find(t, binary, debianPackage)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Find is Need returning the problem instead of failing the test, for a
// test that may skip when the program cannot be had (a second opinion
// rather than the thing tested).
func Find(t testing.TB, binary, debianPackage string) (string, error) {
	t.Helper()
	if path, err := lookPath(binary); err == nil {
		return path, nil
	}
	installsMu.Lock()
	in, ok := installs[debianPackage]
	if !ok {
		in = &install{}
		installs[debianPackage] = in
	}
	installsMu.Unlock()

	in.once.Do(func() {
		t.Logf("testtools: %s not found; installing Debian package %s", binary, debianPackage)
		in.err = aptInstall(binary, debianPackage)
	})
	if in.err != nil {
		return "", fmt.Errorf("testtools: need %s: %w\n(install it with: apt-get install -y %s)", binary, in.err, debianPackage)
	}
	path, err := lookPath(binary)
	if err != nil {
		return "", fmt.Errorf("testtools: Debian package %s installed, but still no %s: %w", debianPackage, binary, err)
	}
	return path, nil
}

// lookPath finds binary on PATH or in the sbin directories.
func lookPath(binary string) (string, error) {
	path, err := exec.LookPath(binary)
	if err == nil {
		return path, nil
	}
	for _, dir := range sbinDirs {
		candidate := filepath.Join(dir, binary)
		if fi, statErr := os.Stat(candidate); statErr == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", err
}

// aptInstall installs pkg under the machine-wide lock. It first tries
// without refreshing the package lists, which is quick when they are fresh,
// and runs apt-get update only when that fails.
func aptInstall(binary, pkg string) error {
	unlock, err := lockFile(lockPath)
	if err != nil {
		return err
	}
	defer unlock()
	// Another test binary may have installed it while we waited.
	if _, err := lookPath(binary); binary != "" && err == nil {
		return nil
	}
	pkgs := strings.Fields(pkg)
	firstErr := apt(append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...)
	if firstErr == nil {
		return nil
	}
	if err := apt("update"); err != nil {
		return fmt.Errorf("%w; then %w", firstErr, err)
	}
	return apt(append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...)
}

// Install installs Debian packages that hold no program of their own to
// look for (a Perl module a program needs), once per process; check
// reports whether they are needed still. It fails the test when the
// install does not make check true.
func Install(t testing.TB, check func() bool, packages ...string) {
	t.Helper()
	if check() {
		return
	}
	key := strings.Join(packages, " ")
	installsMu.Lock()
	in, ok := installs[key]
	if !ok {
		in = &install{}
		installs[key] = in
	}
	installsMu.Unlock()
	in.once.Do(func() {
		t.Logf("testtools: installing Debian packages %s", key)
		in.err = aptInstall("", key)
	})
	if in.err != nil || !check() {
		t.Fatalf("testtools: installing %s did not help: %v\n(install it with: apt-get install -y %s)", key, in.err, key)
	}
}

// apt runs apt-get non-interactively and returns an error holding the tail
// of its output when it fails.
func apt(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), aptTimeout)
	defer cancel()
	// Wait for a dpkg lock held by someone else rather than fail at once.
	args = append([]string{"-o", "DPkg::Lock::Timeout=120", "-q"}, args...)
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args[3:], " "), err, tail(out.String(), 800))
	}
	return nil
}

// lockFile takes an exclusive flock on path, waiting for it, and returns
// the function that releases it. The kernel releases it too if the process
// dies, so a crashed test binary leaves no stale lock.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("lock for apt-get: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// tail returns at most the last n bytes of s, trimmed.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
