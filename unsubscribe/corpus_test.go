package unsubscribe

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// corpus is what the injector must do to each message of testdata/mime.
var corpus = map[string]Outcome{
	"01-outlook-alternative-qp-windows-1252.eml": {Linked: 2},
	"02-outlook-related-inline-image.eml":        {Linked: 2},
	"03-outlook-mixed-pdf-attachment.eml":        {Linked: 2},
	"04-gmail-alternative-no-body-tag.eml":       {Linked: 2},
	"05-gmail-mixed-text-attachment.eml":         {Linked: 2}, // two text attachments untouched
	"06-apple-mail-alternative-qp.eml":           {Linked: 2},
	"07-apple-mail-nested-related-jpeg.eml":      {Linked: 2},
	"08-mailchimp-placeholder-qp.eml":            {Linked: 2},
	"09-hubspot-base64.eml":                      {Linked: 2},
	"10-single-text-no-mime.eml":                 {Linked: 1},
	"11-single-html-8bit-utf8.eml":               {Linked: 1},
	"12-single-text-qp-iso-8859-1.eml":           {Linked: 1},
	"13-single-html-8bit-windows-1252.eml":       {Linked: 1},
	"14-pgp-multipart-signed.eml":                {},          // signed: headers only
	"15-smime-signed-in-mixed.eml":               {Linked: 1}, // the text outside the signature
	"16-pgp-multipart-encrypted.eml":             {},
	"17-no-body.eml":                             {Linked: 1},
	"18-html-no-body-tag-qp-crm.eml":             {Linked: 1},
	"19-very-long-lines.eml":                     {Linked: 2},
	"20-lf-only-alternative.eml":                 {Linked: 2},
	"21-forwarded-rfc822.eml":                    {Linked: 1}, // the forwarded message untouched
	"22-outlook-calendar-invite.eml":             {Linked: 2},
	"23-hubspot-mixed-related-alternative.eml":   {Linked: 2}, // csv attachment untouched
	"24-thunderbird-format-flowed.eml":           {Linked: 1},
	"25-placeholder-split-by-soft-break.eml":     {Linked: 1},
	"26-malformed-boundary.eml":                  {Skipped: 1},
	"27-unknown-transfer-encoding.eml":           {Linked: 1, Skipped: 1},
	"28-undecodable-base64.eml":                  {Skipped: 1},
	"29-unclosed-multipart.eml":                  {Skipped: 1},
}

func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/mime/*.eml")
	if err != nil || len(files) < 20 {
		t.Fatalf("want at least 20 messages in testdata/mime, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			want, ok := corpus[name]
			if !ok {
				t.Fatal("no expectation in the corpus table")
			}
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, got := writeCopy(t, in, testCopy())
			if got != want {
				t.Errorf("outcome %+v, want %+v", got, want)
			}
			if parses(in) == nil {
				if err := parses(out); err != nil {
					t.Fatalf("the copy does not parse: %v\n%s", err, out)
				}
			}
			checkHeader(t, in, out)
			checkBody(t, in, out)
		})
	}
}

// checkHeader: the copy's header is the three list fields on top of the
// received header, from which only the list fields are gone, byte for byte.
func checkHeader(t *testing.T, in, out []byte) {
	t.Helper()
	h, inBody := split(t, in)
	for _, k := range []string{"List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"} {
		h.Del(k)
	}
	var kept bytes.Buffer
	if err := textproto.WriteHeader(&kept, h); err != nil {
		t.Fatal(err)
	}
	oh, outBody := split(t, out)
	outHeader := out[:len(out)-len(outBody)]
	if !bytes.HasSuffix(outHeader, kept.Bytes()) {
		t.Errorf("received header fields changed:\n%s\nwant ending with\n%s", outHeader, kept.Bytes())
	}
	if !bytes.HasPrefix(in[len(in)-len(inBody)-2:], []byte("\n")) && !bytes.HasSuffix(in[:len(in)-len(inBody)], []byte("\n")) {
		t.Errorf("test input without a blank line after its header")
	}
	c := testCopy()
	wantFields := map[string]string{
		"List-Unsubscribe":      "<" + c.URL + ">, <mailto:" + c.Mailto + ">",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"List-Id":               c.ListID,
	}
	for k, v := range wantFields {
		if got := oh.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want just %q", k, got, v)
		}
	}
}

// checkBody: every part that should have the link has it once, and
// every other part, and every signed or encrypted subtree, is as it came.
func checkBody(t *testing.T, in, out []byte) {
	t.Helper()
	_, inBody := split(t, in)
	_, outBody := split(t, out)
	inTree, err := messageTree(t, in)
	if err != nil {
		// Broken structure: the body must be passed on as it came.
		if !bytes.Equal(inBody, outBody) {
			t.Errorf("a message of broken structure changed:\n%s", outBody)
		}
		return
	}
	outTree, err := messageTree(t, out)
	if err != nil {
		t.Fatalf("the copy's structure is broken: %v", err)
	}
	compare(t, "1", inTree, outTree)
}

func compare(t *testing.T, path string, in, out *node) {
	t.Helper()
	if in.typ != out.typ || len(in.children) != len(out.children) {
		t.Fatalf("part %s: %s with %d parts became %s with %d parts", path, in.typ, len(in.children), out.typ, len(out.children))
	}
	switch {
	case in.typ == "multipart/signed" || in.typ == "multipart/encrypted" || in.typ == "message/rfc822":
		if !bytes.Equal(in.raw, out.raw) {
			t.Errorf("part %s (%s) changed", path, in.typ)
		}
	case len(in.children) > 0:
		for i := range in.children {
			compare(t, path+"."+string(rune('1'+i)), in.children[i], out.children[i])
		}
	case in.linkable():
		checkLinked(t, path, in, out)
	default:
		if !bytes.Equal(in.raw, out.raw) {
			t.Errorf("part %s (%s) changed:\n%q\nwant\n%q", path, in.typ, out.raw, in.raw)
		}
	}
}

func checkLinked(t *testing.T, path string, in, out *node) {
	t.Helper()
	if _, err := in.decoded(); err != nil {
		if !bytes.Equal(in.raw, out.raw) {
			t.Errorf("part %s cannot be decoded and changed", path)
		}
		return
	}
	text, err := out.decoded()
	if err != nil {
		t.Fatalf("part %s of the copy does not decode: %v", path, err)
	}
	link := testURL
	if in.typ == "text/html" {
		link = strings.ReplaceAll(link, "&", "&amp;")
	}
	if n := bytes.Count(text, []byte(link)); n != 1 {
		t.Errorf("part %s (%s) holds the link %d times:\n%s", path, in.typ, n, text)
	}
	if bytes.Contains(text, []byte(Placeholder)) {
		t.Errorf("part %s still holds the placeholder", path)
	}
	for k, v := range in.header {
		if got := out.header[k]; strings.Join(got, "\n") != strings.Join(v, "\n") {
			t.Errorf("part %s: header %s changed to %q", path, k, got)
		}
	}
	checkLines(t, path, in, out)
}

// checkLines: a 7bit part stays 7-bit, base64 lines are 76 characters at
// most, no line of a 7bit or 8bit part exceeds 998 bytes unless it did.
func checkLines(t *testing.T, path string, in, out *node) {
	t.Helper()
	cte := strings.ToLower(first(in.header, "Content-Transfer-Encoding"))
	longest := 0
	for line := range bytes.Lines(in.raw) {
		longest = max(longest, len(bytes.TrimRight(line, "\r\n")))
	}
	for line := range bytes.Lines(out.raw) {
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case (cte == "" || cte == "7bit" || cte == "quoted-printable" || cte == "base64") && !isASCII(line):
			t.Errorf("part %s (%s): 8-bit line %q", path, cte, line)
		case cte == "base64" && len(line) > 76, cte == "quoted-printable" && len(line) > 76:
			t.Errorf("part %s (%s): line of %d characters", path, cte, len(line))
		case len(line) > max(998, longest):
			t.Errorf("part %s: line of %d bytes", path, len(line))
		}
	}
}
