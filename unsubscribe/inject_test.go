package unsubscribe

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/text/encoding/charmap"
)

func msg(header, body string) []byte {
	return []byte(strings.ReplaceAll(header, "\n", "\r\n") + "\r\n" + body)
}

func bodyOf(t *testing.T, out []byte) []byte {
	t.Helper()
	_, b := split(t, out)
	return b
}

func TestFooterOffLeavesBodyAlone(t *testing.T) {
	raw := msg("Subject: x\nContent-Type: text/html\n", "<html><body>{{unsubscribe_url}}</body></html>\r\n")
	c := testCopy()
	c.Footer = false
	out, o := writeCopy(t, raw, c)
	if o != (Outcome{}) {
		t.Errorf("outcome %+v, want nothing done", o)
	}
	if _, body := split(t, raw); !bytes.Equal(bodyOf(t, out), body) {
		t.Errorf("body changed:\n%s", out)
	}
	if h, _ := split(t, out); h.Get("List-Unsubscribe-Post") != oneClick {
		t.Error("headers missing")
	}
}

func TestHeadersReplaceTheSenders(t *testing.T) {
	raw := msg("List-Unsubscribe: <https://crm.example/u/1>\nList-Unsubscribe: <mailto:u@crm.example>\n"+
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click\nList-Id: CRM <x.crm.example>\nSubject: hi\n", "hi\r\n")
	tests := []struct {
		name    string
		c       Copy
		unsub   string
		listIDs []string
	}{
		// the CRM's List-Id gives way to the purpose's
		{"full", testCopy(), "<" + testURL + ">, <mailto:unsubscribe+AbC-dEf_123@optin.example>", []string{testCopy().ListID}},
		// without a List-Id of ours, the CRM's stays
		{"no list id", Copy{URL: testURL}, "<" + testURL + ">", []string{"CRM <x.crm.example>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := writeCopy(t, raw, tt.c)
			h, _ := split(t, out)
			if got := h.Values("List-Unsubscribe"); len(got) != 1 || got[0] != tt.unsub {
				t.Errorf("List-Unsubscribe = %q, want %q", got, tt.unsub)
			}
			if got := h.Values("List-Unsubscribe-Post"); len(got) != 1 || got[0] != oneClick {
				t.Errorf("List-Unsubscribe-Post = %q", got)
			}
			if got := h.Values("List-Id"); fmt.Sprint(got) != fmt.Sprint(tt.listIDs) {
				t.Errorf("List-Id = %q, want %q", got, tt.listIDs)
			}
			if h.Get("Subject") != "hi" {
				t.Error("Subject lost")
			}
		})
	}
}

func TestBadCopyIsRefused(t *testing.T) {
	for _, c := range []Copy{
		{},                                      // no URL
		{URL: "https://x.example/u/a b"},        // space
		{URL: "https://x.example/u/a>"},         // would end the <...>
		{URL: "https://x.example/u/a,b"},        // would start a second URL
		{URL: "https://x.example/u/\r\nBcc: x"}, // header injection
		{URL: "https://x.example/u/é"},          // not ASCII
		{URL: "https://x.example/u/a", Mailto: "no-at-sign"},
		{URL: "https://x.example/u/a", Mailto: "a@b>"},
		{URL: "https://x.example/u/a", ListID: "x\r\nBcc: y"},
	} {
		var out bytes.Buffer
		h, body := split(t, msg("Subject: x\n", "hi"))
		_, err := WriteCopy(&out, h, body, c)
		if !errors.Is(err, ErrCopy) {
			t.Errorf("%+v: error %v, want ErrCopy", c, err)
		}
		if out.Len() != 0 {
			t.Errorf("%+v: wrote %q", c, out.Bytes())
		}
	}
}

func readCorpus(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/mime/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// failAfter fails every write once n bytes went through.
type failAfter struct{ n int }

var errWrite = errors.New("write failed")

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		f.n = 0
		return 0, errWrite
	}
	f.n -= len(p)
	return len(p), nil
}

// TestWriteErrorsArePassedOn: whichever write fails, WriteCopy returns
// its error.
func TestWriteErrorsArePassedOn(t *testing.T) {
	in := readCorpus(t, "23-hubspot-mixed-related-alternative.eml")
	full, _ := writeCopy(t, in, testCopy())
	for _, c := range []Copy{testCopy(), {URL: testURL}} {
		for n := 0; n < len(full); n += 7 {
			h, body := split(t, in)
			if _, err := WriteCopy(&failAfter{n}, h, body, c); !errors.Is(err, errWrite) {
				t.Fatalf("footer %v, failing after %d bytes: error %v", c.Footer, n, err)
			}
			if !c.Footer && n > len(full)/2 {
				break
			}
		}
	}
}

func TestFooterPlacement(t *testing.T) {
	foot := "\r\n" + fill(builtin["nl"].HTML, testURL, true) + "\r\n"
	text := fill(builtin["nl"].Text, testURL, false)
	text = strings.ReplaceAll(text, "\n", "\r\n")
	tests := []struct {
		name, ctype, body, want string
	}{
		// before the last </body>, whatever its case
		{"html", "text/html", "<body>a</body></html>\r\n", "<body>a" + foot + "</body></html>\r\n"},
		{"last body", "text/html", "<p>&lt;/body&gt; </body> x</BODY >\r\n", "<p>&lt;/body&gt; </body> x" + foot + "</BODY >\r\n"},
		{"no body tag", "text/html", "<div>a</div>\r\n", "<div>a</div>\r\n" + foot[2:]},
		{"no body tag, no newline", "text/html", "<div>a</div>", "<div>a</div>" + foot[:len(foot)-2]},
		{"not a body tag", "text/html", "<bodyx></bodyx>", "<bodyx></bodyx>" + foot[:len(foot)-2]},
		// text: after a blank line
		{"text", "text/plain", "Hallo\r\n", "Hallo\r\n\r\n" + text + "\r\n"},
		{"text without newline", "text/plain", "Hallo", "Hallo\r\n\r\n" + text},
		{"empty text", "text/plain", "", text + "\r\n"},
		{"lf text", "text/plain", "a\nb\n", "a\nb\n\n" + strings.ReplaceAll(text, "\r\n", "\n") + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, o := writeCopy(t, msg("Content-Type: "+tt.ctype+"; charset=utf-8\n", tt.body), testCopy())
			if got := string(bodyOf(t, out)); got != tt.want || o.Linked != 1 {
				t.Errorf("got %q (%+v)\nwant %q", got, o, tt.want)
			}
		})
	}
}

func TestPlaceholderIsReplacedEverywhere(t *testing.T) {
	esc := strings.ReplaceAll(testURL, "&", "&amp;")
	tests := []struct {
		name, ctype, body, want string
	}{
		{"text twice", "text/plain", "a {{unsubscribe_url}} b {{unsubscribe_url}}\r\n", "a " + testURL + " b " + testURL + "\r\n"},
		{"html escaped", "text/html", `<a href="{{unsubscribe_url}}">x</a></body>`, `<a href="` + esc + `">x</a></body>`},
		{"almost", "text/plain", "{{unsubscribe_url}", "{{unsubscribe_url}\r\n\r\n" + strings.ReplaceAll(fill(builtin["nl"].Text, testURL, false), "\n", "\r\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := writeCopy(t, msg("Content-Type: "+tt.ctype+"\n", tt.body), testCopy())
			if got := string(bodyOf(t, out)); got != tt.want {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestPatternsAcrossPieces: a placeholder or </body> that straddles the
// pieces the decoder hands out is still found.
func TestPatternsAcrossPieces(t *testing.T) {
	const piece = 32 << 10
	for shift := -20; shift <= 2; shift++ {
		for _, tail := range []string{Placeholder, "</body>"} {
			pad := strings.Repeat("x", piece+shift)
			content := pad + tail + "y"
			enc := base64.StdEncoding.EncodeToString([]byte(content))
			raw := msg("Content-Type: text/html\nContent-Transfer-Encoding: base64\n", enc)
			out, o := writeCopy(t, raw, testCopy())
			text, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, noSpace{bytes.NewReader(bodyOf(t, out))}))
			if err != nil || o.Linked != 1 {
				t.Fatalf("shift %d: %v %+v", shift, err, o)
			}
			var want string
			if tail == Placeholder {
				want = pad + strings.ReplaceAll(testURL, "&", "&amp;") + "y"
			} else {
				want = pad + "\r\n" + fill(builtin["nl"].HTML, testURL, true) + "\r\n</body>y"
			}
			if string(text) != want {
				t.Fatalf("shift %d, %s: got ...%q", shift, tail, text[max(0, len(text)-300):])
			}
		}
	}
}

// TestFooterCharsets: the footer is written in the part's charset, and
// where the charset lacks a character, HTML gets a character reference
// and text the ASCII footer.
func TestFooterCharsets(t *testing.T) {
	tm, err := NewTemplates(map[string]Footer{"nl": {Text: "Afmelden kost € 0, café: " + Placeholder, HTML: "<p>Afmelden kost € 0, café: <a href=\"" + Placeholder + "\">hier</a></p>"}})
	if err != nil {
		t.Fatal(err)
	}
	ascii := strings.ReplaceAll(fill(builtin["nl"].Text, testURL, false), "\n", "\r\n")
	tests := []struct {
		charset, cte, ctype string
		want                []byte // in the part's charset, decoded
	}{
		{"utf-8", "quoted-printable", "text/plain", []byte("Afmelden kost € 0, café: " + testURL)},
		{"windows-1252", "quoted-printable", "text/plain", []byte("Afmelden kost \x80 0, caf\xe9: " + testURL)},
		{"windows-1252", "base64", "text/html", []byte("<p>Afmelden kost \x80 0, caf\xe9:")},
		{"iso-8859-1", "quoted-printable", "text/plain", []byte(ascii)},         // no € in Latin-1
		{"iso-8859-1", "8bit", "text/html", []byte("kost &#8364; 0, caf\xe9:")}, // é is, € is not
		{"iso-8859-15", "8bit", "text/plain", []byte("kost \xa4 0, caf\xe9")},
		{"utf-8", "7bit", "text/plain", []byte(ascii)},                       // 7bit stays 7-bit
		{"utf-8", "7bit", "text/html", []byte("kost &#8364; 0, caf&#233;:")}, // in ASCII
		{"", "", "text/plain", []byte(ascii)},                                // US-ASCII
		{"utf-8", "8bit", "text/html", []byte("kost € 0, café:")},
	}
	for _, tt := range tests {
		t.Run(tt.charset+"/"+tt.cte+"/"+tt.ctype, func(t *testing.T) {
			h := "Content-Type: " + tt.ctype
			if tt.charset != "" {
				h += "; charset=" + tt.charset
			}
			h += "\nContent-Transfer-Encoding: " + tt.cte + "\n"
			body := "caf\xe9\r\n"
			switch tt.cte {
			case "base64":
				body = base64.StdEncoding.EncodeToString([]byte(body)) + "\r\n"
			case "quoted-printable":
				body = "caf=E9\r\n"
			case "7bit", "":
				body = "cafe\r\n"
			}
			c := testCopy()
			c.Templates = tm
			out, o := writeCopy(t, msg(h, body), c)
			n := &node{raw: bodyOf(t, out), header: map[string][]string{"Content-Transfer-Encoding": {tt.cte}}}
			text, err := n.decoded()
			if err != nil || o.Linked != 1 {
				t.Fatalf("%v %+v", err, o)
			}
			if !bytes.Contains(text, tt.want) {
				t.Errorf("got %q\nwant it to hold %q", text, tt.want)
			}
			if tt.charset == "windows-1252" {
				if u, _ := charmap.Windows1252.NewDecoder().Bytes(text); !bytes.Contains(u, []byte("€ 0, café")) {
					t.Errorf("does not read as Windows-1252: %q", u)
				}
			}
		})
	}
}

// TestUnreadablePartsAreLeftAlone: what cannot be read safely is written
// as it came and counted.
func TestUnreadablePartsAreLeftAlone(t *testing.T) {
	tests := []struct{ name, header, body string }{
		{"utf-16", "Content-Type: text/plain; charset=utf-16\n", "\xff\xfeh\x00i\x00"},
		{"iso-2022-jp", "Content-Type: text/plain; charset=iso-2022-jp\n", "\x1b$B$3$s\x1b(B\r\n"},
		{"unknown charset", "Content-Type: text/plain; charset=x-martian\n", "hi\r\n"},
		{"unknown encoding", "Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n", "begin 644 x\r\n"},
		{"bad base64", "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n", "aGk=aGk=\r\n"},
		{"bad quoted-printable", "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n", "a\x01b\r\n"},
		{"bad content type", "Content-Type: text/\n", "hi\r\n"},
		{"no boundary", "Content-Type: multipart/mixed\n", "--x\r\n\r\nhi\r\n--x--\r\n"},
		{"part without header end", "Content-Type: multipart/mixed; boundary=x\n", "--x\r\nContent-Type: text/plain\r\n--x--\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := msg(tt.header, tt.body)
			out, o := writeCopy(t, raw, testCopy())
			if o != (Outcome{Skipped: 1}) {
				t.Errorf("outcome %+v, want one skipped", o)
			}
			if got := bodyOf(t, out); string(got) != tt.body {
				t.Errorf("body %q, want %q", got, tt.body)
			}
		})
	}
}

// TestNoLineLooksLikeADelimiter: re-encoding quoted-printable could start
// a line with the boundary of the enclosing multipart ("=2D-b" decodes to
// "--b"); such a part is left as it came.
func TestNoLineLooksLikeADelimiter(t *testing.T) {
	body := "--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"a\r\n=2D-b\r\nc\r\n--b--\r\n"
	raw := msg("Content-Type: multipart/mixed; boundary=b\n", body)
	out, o := writeCopy(t, raw, testCopy())
	if o != (Outcome{Skipped: 1}) || string(bodyOf(t, out)) != body {
		t.Errorf("outcome %+v, body %q", o, bodyOf(t, out))
	}
	if err := parses(out); err != nil {
		t.Error(err)
	}
}

// nested is a multipart body nested n deep around a text part.
func nested(i, n int) string {
	if i == n {
		return fmt.Sprintf("--b%d\r\n\r\nhi\r\n--b%d--", i, i)
	}
	return fmt.Sprintf("--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n%s\r\n--b%d--", i, i+1, nested(i+1, n), i)
}

func TestDeepNestingIsLeftAlone(t *testing.T) {
	for _, tt := range []struct {
		depth int
		want  Outcome
	}{
		{maxDepth - 1, Outcome{Linked: 1}},
		{maxDepth + 2, Outcome{Skipped: 1}},
	} {
		body := nested(0, tt.depth) + "\r\n"
		out, o := writeCopy(t, msg("Content-Type: multipart/mixed; boundary=b0\n", body), testCopy())
		if o != tt.want {
			t.Errorf("depth %d: outcome %+v, want %+v", tt.depth, o, tt.want)
		}
		if err := parses(out); err != nil {
			t.Errorf("depth %d: %v", tt.depth, err)
		}
	}
}

// TestCopiesShareTheBody: copies written at once from one body are each
// whole and leave the body as it was (run with -race).
func TestCopiesShareTheBody(t *testing.T) {
	in := readCorpus(t, "01-outlook-alternative-qp-windows-1252.eml")
	h, body := split(t, in)
	before := bytes.Clone(body)
	want, _ := writeCopy(t, in, testCopy())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			var out bytes.Buffer
			if _, err := WriteCopy(&out, h.Copy(), body, testCopy()); err != nil || !bytes.Equal(out.Bytes(), want) {
				t.Errorf("a concurrent copy differs (%v)", err)
			}
		})
	}
	wg.Wait()
	if !bytes.Equal(body, before) {
		t.Error("the shared body changed")
	}
}

func TestQuotedPrintableStaysShort(t *testing.T) {
	long := strings.Repeat("lange regel ", 200)
	var enc bytes.Buffer
	q := quotedprintable.NewWriter(&enc)
	q.Write([]byte(long))
	q.Close()
	out, _ := writeCopy(t, msg("Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n", enc.String()), testCopy())
	for line := range bytes.Lines(bodyOf(t, out)) {
		if len(bytes.TrimRight(line, "\r\n")) > 76 {
			t.Fatalf("line of %d characters", len(line))
		}
	}
}

func TestQPCanWrite(t *testing.T) {
	for b, want := range map[string]bool{
		"----=_NextPart_000_0001": false, // Outlook: "=" before "_"
		"Apple-Mail=_6A1B":        false,
		"000000000000d4f1a2":      false, // no "=" at all
		"a=3Db":                   true,  // an escape
		"ends=":                   true,  // a soft line break
	} {
		if got := qpCanWrite(b); got != want {
			t.Errorf("qpCanWrite(%q) = %v, want %v", b, got, want)
		}
	}
}
