package smtpproxy

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// headerFault keeps none of the text of the error it classifies, whatever
// the error: the text may quote the message.
func TestHeaderFault(t *testing.T) {
	const content = "jan.dejong@example.org"
	for _, c := range []struct {
		err  error
		kind string
	}{
		{fmt.Errorf("message: malformed MIME header line: %s", content), "colon"},
		{fmt.Errorf("message: malformed MIME header key: %s", content), "field name"},
		{fmt.Errorf("message: malformed MIME header initial line: %s", content), "continuation"},
		{fmt.Errorf("reading %s: %w", content, io.ErrUnexpectedEOF), "ends inside"},
		{io.EOF, "ends inside"},
		{errors.New("a future error about " + content), "unreadable"},
	} {
		err := headerFault(c.err)
		var he headerError
		if !errors.As(err, &he) || !strings.Contains(err.Error(), c.kind) || strings.Contains(err.Error(), content) {
			t.Errorf("headerFault(%q) = %q, want a headerError saying %q without the content", c.err, err, c.kind)
		}
	}
}
