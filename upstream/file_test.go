package upstream_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"optinproxy/upstream"
)

// emlFiles lists the .eml files in dir and fails on anything else, such
// as a temporary file left behind.
func emlFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".eml") || strings.HasPrefix(e.Name(), ".") {
			t.Errorf("unexpected file %s in the outbox", e.Name())
			continue
		}
		names = append(names, filepath.Join(dir, e.Name()))
	}
	return names
}

// Each Send writes one .eml file: the envelope sender and one line per
// recipient above the message, which follows unchanged. Nothing else is
// left in the folder.
func TestFileWritesOneEMLPerSend(t *testing.T) {
	dir := t.TempDir()
	s := newSender(t, upstream.Options{URL: "file://" + dir})
	ctx := context.Background()
	if rcptErrs, err := s.Send(ctx, "crm@shop.example", []string{"jan@example.com", "jürgen@bücher.example"}, testMsg, nil); err != nil || rcptErrs != nil {
		t.Fatalf("send: %v %v", rcptErrs, err)
	}
	if _, err := s.Send(ctx, "", []string{"piet@example.org"}, testMsg, nil); err != nil {
		t.Fatal(err)
	}
	files := emlFiles(t, dir)
	if len(files) != 2 {
		t.Fatalf("%d .eml files, want 2", len(files))
	}
	want := map[string]bool{
		"X-Optinproxy-Envelope-From: <crm@shop.example>\r\n" +
			"X-Optinproxy-Envelope-To: <jan@example.com>\r\n" +
			"X-Optinproxy-Envelope-To: <jürgen@bücher.example>\r\n" + string(testMsg): true,
		// The null sender is written as <>.
		"X-Optinproxy-Envelope-From: <>\r\n" +
			"X-Optinproxy-Envelope-To: <piet@example.org>\r\n" + string(testMsg): true,
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !want[string(b)] {
			t.Errorf("%s:\n%s", filepath.Base(f), b)
		}
		delete(want, string(b))
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
	if files := emlFiles(t, dir); len(files) != 2 {
		t.Errorf("ping left %d files", len(files))
	}
}

// A cancelled send writes nothing.
func TestFileCancelledSendWritesNothing(t *testing.T) {
	dir := t.TempDir()
	s := newSender(t, upstream.Options{URL: "file://" + dir})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Send(ctx, "crm@shop.example", []string{"jan@example.com"}, testMsg, nil); err == nil {
		t.Error("cancelled send succeeded")
	}
	if files := emlFiles(t, dir); len(files) != 0 {
		t.Errorf("%d files written", len(files))
	}
}

// A folder that can no longer be written (here: replaced by a file) is
// an error at Send and at Ping, never a silent loss.
func TestFileUnwritableFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	s := newSender(t, upstream.Options{URL: "file://" + dir})
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(context.Background(), "crm@shop.example", []string{"jan@example.com"}, testMsg, nil); err == nil {
		t.Error("send into a folder that is a file succeeded")
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Error("ping of a folder that is a file succeeded")
	}
}

// file://DIR is a path relative to the working directory unless it
// starts with a slash: file://./x and file://x are both ./x,
// file:///abs is /abs.
func TestFilePath(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"file://./x", "x"},
		{"file://x", "x"},
		{"file://./data/outbox", "data/outbox"},
		{"file://data/outbox", "data/outbox"},
		{"file://data/outbox/", "data/outbox"},
		{"file://../outbox", "../outbox"},
		{"file:///abs", "/abs"},
		{"file:///var/spool/optinproxy/", "/var/spool/optinproxy"},
		{"file:x", "x"},
		{"file:./x", "x"},
		{"file://.", "."},
		{"file://", "."},
		{"file://./my%20mail", "my mail"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if got := upstream.FilePath(u); got != tc.want {
			t.Errorf("FilePath(%s) = %q, want %q", tc.url, got, tc.want)
		}
	}
}

// New resolves a relative file:// URL against the working directory and
// creates the folder there.
func TestFileRelativeToWorkingDirectory(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)
	for _, u := range []string{"file://./outbox", "file://outbox2/sub"} {
		s := newSender(t, upstream.Options{URL: u})
		if _, err := s.Send(context.Background(), "crm@shop.example", []string{"jan@example.com"}, testMsg, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(emlFiles(t, filepath.Join(wd, "outbox"))); n != 1 {
		t.Errorf("%d files in ./outbox, want 1", n)
	}
	if n := len(emlFiles(t, filepath.Join(wd, "outbox2", "sub"))); n != 1 {
		t.Errorf("%d files in ./outbox2/sub, want 1", n)
	}
}

// The file upstream writes every line ending in CRLF, like the SMTP one,
// without dot-stuffing: a bare CR or LF in a message does not reach a
// pickup mailer that might read it as a line end.
func TestFileWritesCRLFLines(t *testing.T) {
	dir := t.TempDir()
	s := newSender(t, upstream.Options{URL: "file://" + dir})
	m := msg("Subject: hi\r\n\r\nbody\r.\nMAIL FROM:<e@x>\nlast")
	if _, err := s.Send(context.Background(), "crm@shop.example", []string{"jan@example.com"}, m, nil); err != nil {
		t.Fatal(err)
	}
	files := emlFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("%d .eml files", len(files))
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	want := "X-Optinproxy-Envelope-From: <crm@shop.example>\r\nX-Optinproxy-Envelope-To: <jan@example.com>\r\n" +
		"Subject: hi\r\n\r\nbody\r\n.\r\nMAIL FROM:<e@x>\r\nlast\r\n"
	if string(b) != want {
		t.Errorf("file:\n%q\nwant\n%q", b, want)
	}
}
