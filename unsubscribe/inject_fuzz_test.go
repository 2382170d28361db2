package unsubscribe

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// FuzzWriteCopy: whatever the message, WriteCopy does not panic, a copy
// of a message that parsed parses too, and every part that is not to get
// the link stays byte for byte.
func FuzzWriteCopy(f *testing.F) {
	files, _ := filepath.Glob("testdata/mime/*.eml")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n{{unsubscribe_url}}\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n</BODY>=E9=\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := bytes.NewReader(raw)
		br := bufio.NewReader(r)
		h, err := textproto.ReadHeader(br)
		if err != nil {
			return
		}
		body := raw[len(raw)-r.Len()-br.Buffered():]
		before := bytes.Clone(body)
		var out bytes.Buffer
		o, err := WriteCopy(&out, h, body, testCopy())
		if err != nil {
			t.Fatalf("WriteCopy: %v", err)
		}
		if !bytes.Equal(body, before) {
			t.Fatal("the body changed")
		}
		if o.Linked == 0 && !bytes.HasSuffix(out.Bytes(), body) {
			t.Fatal("nothing linked, yet the body changed")
		}
		if parses(raw) == nil {
			if err := parses(out.Bytes()); err != nil {
				t.Fatalf("the copy does not parse: %v\n%q", err, out.Bytes())
			}
		}
		inTree, err := tree(h.Map(), body, "text/plain")
		if err != nil {
			return
		}
		outTree, err := messageTree(t, out.Bytes())
		if err != nil {
			t.Fatalf("the copy's structure broke: %v\n%q", err, out.Bytes())
		}
		sameNonText(t, inTree, outTree)
	})
}

// sameNonText compares the trees: same shape, and every part not to be
// linked, and every signed or encrypted subtree, byte for byte.
func sameNonText(t *testing.T, in, out *node) {
	t.Helper()
	if in.typ != out.typ || len(in.children) != len(out.children) {
		t.Fatalf("%s with %d parts became %s with %d", in.typ, len(in.children), out.typ, len(out.children))
	}
	switch {
	case len(in.children) > 0 && in.typ != "multipart/signed" && in.typ != "multipart/encrypted":
		for i := range in.children {
			sameNonText(t, in.children[i], out.children[i])
		}
	case in.linkable() && len(in.children) == 0:
	default:
		if !bytes.Equal(in.raw, out.raw) {
			t.Fatalf("a %s part changed:\n%q\nwant\n%q", in.typ, out.raw, in.raw)
		}
	}
}
