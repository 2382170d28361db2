package unsubscribe

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"strings"
	"testing"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// testURL has an ampersand so that HTML escaping shows.
const testURL = "https://optin.example/u/AbC-dEf_123?x=1&y=2"

func testCopy() Copy {
	return Copy{URL: testURL, Mailto: "unsubscribe+AbC-dEf_123@optin.example", ListID: ListID("newsletter", "Our monthly newsletter", "optin.example"), Lang: "nl", Footer: true}
}

// split parses a raw message into its header and body, as the relay does.
func split(t testing.TB, raw []byte) (textproto.Header, []byte) {
	t.Helper()
	r := bytes.NewReader(raw)
	br := bufio.NewReader(r)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		t.Fatalf("reading the header: %v", err)
	}
	return h, raw[len(raw)-r.Len()-br.Buffered():]
}

func writeCopy(t testing.TB, raw []byte, c Copy) ([]byte, Outcome) {
	t.Helper()
	h, body := split(t, raw)
	var out bytes.Buffer
	o, err := WriteCopy(&out, h, body, c)
	if err != nil {
		t.Fatalf("WriteCopy: %v", err)
	}
	return out.Bytes(), o
}

// node is one entity of a message as the standard library's multipart
// reader sees it: an independent reading of what the injector wrote.
type node struct {
	typ      string
	params   map[string]string
	header   map[string][]string
	raw      []byte // the body as it is in the message
	children []*node
}

// tree reads an entity; an error means the MIME structure is broken.
func tree(header map[string][]string, body []byte, defType string) (*node, error) {
	n := &node{header: header, raw: body, typ: defType, params: map[string]string{}}
	if v := first(header, "Content-Type"); v != "" {
		typ, params, err := mime.ParseMediaType(v)
		if err != nil {
			return n, nil // a leaf the injector leaves alone
		}
		n.typ, n.params = typ, params
	}
	if !strings.HasPrefix(n.typ, "multipart/") {
		return n, nil
	}
	r := multipart.NewReader(bytes.NewReader(body), n.params["boundary"])
	for {
		p, err := r.NextRawPart()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		c, err := tree(p.Header, b, "text/plain")
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, c)
	}
}

func first(h map[string][]string, k string) string {
	for key, v := range h {
		if strings.EqualFold(key, k) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func messageTree(t testing.TB, raw []byte) (*node, error) {
	h, body := split(t, raw)
	return tree(h.Map(), body, "text/plain")
}

// linkable tells, independently of the injector, whether a part should
// get the link.
func (n *node) linkable() bool {
	if n.typ != "text/plain" && n.typ != "text/html" || n.params["name"] != "" {
		return false
	}
	d := first(n.header, "Content-Disposition")
	if d == "" {
		return true
	}
	disp, p, err := mime.ParseMediaType(d)
	return err == nil && disp != "attachment" && p["filename"] == ""
}

// decoded undoes the part's transfer encoding.
func (n *node) decoded() ([]byte, error) {
	var r io.Reader = bytes.NewReader(n.raw)
	switch strings.ToLower(strings.TrimSpace(first(n.header, "Content-Transfer-Encoding"))) {
	case "", "7bit", "8bit", "binary":
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, noSpace{r})
	default:
		return nil, errors.New("unknown transfer encoding")
	}
	return io.ReadAll(r)
}

// parses reads the whole message with go-message, every part's body
// decoded; unknown charsets are fine (no charset package is loaded).
func parses(raw []byte) error {
	m, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return err
	}
	return m.Walk(func(_ []int, e *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return err
		}
		if e.MultipartReader() == nil {
			_, err := io.Copy(io.Discard, e.Body)
			return err
		}
		return nil
	})
}
