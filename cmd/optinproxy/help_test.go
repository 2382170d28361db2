package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// runHere runs the command line in this process and returns its exit
// status and output.
func runHere(args ...string) (code int, stdout, stderr string) {
	var out, errs bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errs}
	code = run(context.Background(), e, args)
	return code, out.String(), errs.String()
}

// Every command and subcommand answers --help, and help COMMAND, with
// its usage: its arguments, what it does and its flags, on standard
// output with exit status 0, and touches nothing else.
func TestHelpOfEveryCommand(t *testing.T) {
	for _, c := range commands {
		for _, name := range invocations(c) {
			for _, args := range [][]string{append(name, "--help"), append(name, "-h"), append([]string{"help"}, name...)} {
				if len(args) == 3 && args[0] == "help" {
					continue // help takes one command; a verb's help is VERB --help
				}
				code, out, errs := runHere(args...)
				want := "usage: optinproxy " + strings.Join(name, " ")
				if code != 0 || !strings.HasPrefix(out, want) || !strings.Contains(out, c.summary) || errs != "" {
					t.Errorf("%q: exit %d, stderr %q, stdout:\n%s\nwant it to start with %q and hold the summary", args, code, errs, out, want)
				}
			}
		}
	}
	_, out, _ := runHere("erase", "--help")
	for _, want := range []string{"usage: optinproxy erase [flags] EMAIL", "-at string", "-cancel", "-token string"} {
		if !strings.Contains(out, want) {
			t.Errorf("erase --help lacks %q:\n%s", want, out)
		}
	}
	_, out, _ = runHere("consent", "--help")
	for _, want := range []string{"optinproxy consent grant EMAIL PURPOSE", "optinproxy consent show EMAIL", "optinproxy consent VERB --help"} {
		if !strings.Contains(out, want) {
			t.Errorf("consent --help lacks %q:\n%s", want, out)
		}
	}
	if _, out, _ := runHere("help"); !strings.Contains(out, "optinproxy help COMMAND") {
		t.Errorf("help does not say how to get a command's usage:\n%s", out)
	}
}
