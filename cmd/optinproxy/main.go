// Command optinproxy is the one binary of optinproxy: the server (serve)
// and the command line around it. This package only wires: it loads the
// configuration, opens what the servers need, runs them and stops them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// command is one subcommand. run gets the arguments after the command name
// and returns an error; a usageError exits 2 with one line.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// commands is every subcommand, in one place and in the order help lists
// them, so that what the binary can do is read here and not gathered from
// init functions across the package.
var commands = []command{
	{"check", "decide each address of a list for a purpose, as the relay would, sending nothing", runCheck},
	{"check-config", "validate the configuration and print every problem", runCheckConfig},
	{"consent", "grant|withdraw|show: change or show a subject's consents", runConsent},
	{"erase", "erase a subject now, or --at a later time (--cancel cancels)", runErase},
	{"export", "export everything stored about a subject (json, csv, xlsx)", runExport},
	{"hash-password", "print the bcrypt hash of a password (from stdin or the argument)", runHashPassword},
	{"import", "import consents from a CSV file", runImport},
	{"migrate", "copy the whole ledger into another store (Redis or the embedded one), chains and keys intact", runMigrate},
	{"outbox", "list|replay: the outbound webhook deliveries, and the dead ones sent again", runOutbox},
	{"portal-link", "print a temporary link to a subject's personal portal", runPortalLink},
	{"report", "no-basis|no-proof|expiring|outdated-policy|processing|affected: the reports on consents, mail and processing", runReport},
	{"rotate-key", "re-wrap every subject key under a new ledger key generation, or --retire one", runRotateKey},
	{"serve", "run the SMTP relay and the HTTP service", runServe},
	{"suppress", "add|remove|list address-level suppressions", runSuppress},
	{"sync", "mailchimp: pull the configured Mailchimp audience into the ledger", runSync},
	{"unsubscribe-url", "print the unsubscribe link of an address and a purpose (offline)", runUnsubscribeURL},
	{"verify", "check every subject's hash-chained history", runVerify},
	{"version", "print the version", runVersion},
}

// lookup finds the command called name.
func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// env is what a command may touch of the process, so tests can run
// commands in-process.
type env struct {
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	environ []string
}

func (e *env) getenv(key string) string {
	for _, kv := range e.environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// usageError is a wrong invocation: printed as one line, exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ()}
	os.Exit(run(ctx, e, os.Args[1:]))
}

// run dispatches args to a command and returns the exit status.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 2 && args[0] == "help" {
		// help COMMAND is COMMAND --help.
		args = []string{args[1], "--help"}
	}
	if len(args) == 0 || isHelp(args[0]) || args[0] == "help" {
		printUsage(e.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(e.stderr, "optinproxy: unknown command %q (see optinproxy help)\n", args[0])
		return 2
	}
	if _, verbs := subcommands[c.name]; verbs && len(args) > 1 && isHelp(args[1]) {
		printSubcommands(e.stdout, c)
		return 0
	}
	err := c.run(ctx, e, args[1:])
	var ue usageError
	var he helpError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &he):
		printHelp(e.stdout, he.fs)
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "optinproxy %s: %s\n", args[0], printable(ue.msg, false))
		return 2
	default:
		var ce exitError
		if errors.As(err, &ce) {
			fmt.Fprintln(e.stderr, printable(ce.msg, true))
			return ce.code
		}
		// Some errors go on with a second line of advice by design.
		fmt.Fprintf(e.stderr, "optinproxy %s: %s\n", args[0], printable(err.Error(), true))
		return 1
	}
}

// printable escapes what a terminal would act on instead of show (escape
// sequences, carriage returns, NUL, bidirectional overrides, bytes that
// are no UTF-8), as Go quotes them: an error may echo a flag, path or
// argument as typed, and must neither reach the terminal as a command
// nor break its one line. keepLines keeps the newlines of a message that
// is a list by design.
func printable(s string, keepLines bool) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				fmt.Fprintf(&b, `\x%02x`, s[i])
				continue
			}
			b.WriteRune(r)
		case r == '\n' && keepLines, unicode.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}

// exitError carries its own message and exit status (check-config's
// list of problems exits 2).
type exitError struct {
	msg  string
	code int
}

func (e exitError) Error() string { return e.msg }

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: optinproxy <command> [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-15s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEach command's arguments and flags: optinproxy help COMMAND, or optinproxy COMMAND --help.")
}

// parseFlags parses fs from args where flags may stand before or after the
// positional arguments, and returns the positional ones. A wrong flag is a
// usageError of one line that names it, as flagError says.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var refused refusedValue
	restore := watchValues(fs, &refused)
	defer restore()
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, helpError{fs}
			}
			restore()
			return nil, flagError(fs, err, refused)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
