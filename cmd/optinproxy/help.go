package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// synopses are the arguments of each command and subcommand, by the name
// of its flag set, as --help shows them; a second line says more.
var synopses = map[string]string{
	"check":            "FILE.csv --purpose PURPOSE\nFILE.csv is a CSV with an email column, or one address a line; - reads standard input.",
	"check-config":     "[FILE]",
	"consent grant":    "EMAIL PURPOSE",
	"consent withdraw": "EMAIL PURPOSE",
	"consent show":     "EMAIL",
	"erase":            "EMAIL",
	"export":           "EMAIL\nWrites standard output; an xlsx to a terminal goes to EMAIL.xlsx. An existing file is kept unless --force.",
	"hash-password":    "[PASSWORD]\nWithout PASSWORD, one line is read from standard input.",
	"import":           "FILE.csv\nThe columns: email,purpose,status,basis,source[,granted_at,policy_version,ip],\nseparated by commas or semicolons; a row may leave off the optional ones. See docs/import-sample.csv.",
	"migrate":          "--to TARGET\nTARGET is a redis:// or rediss:// URL, or a folder for the embedded store; it must be empty.\nStop every proxy first. Run again after an interruption, it goes on where it stopped. See docs/migrate.md.",
	"outbox list":      "",
	"outbox replay":    "ID... | --all",
	"portal-link":      "EMAIL",
	"report":           "no-basis|no-proof|expiring|outdated-policy|processing|affected",
	"rotate-key":       "",
	"serve":            "\nSIGHUP reloads the users, purposes, role addresses, footers and outbound webhooks; see docs/reload.md.",
	"suppress add":     "EMAIL --reason REASON",
	"suppress remove":  "EMAIL",
	"suppress list":    "",
	"sync":             "mailchimp",
	"unsubscribe-url":  "EMAIL --purpose PURPOSE",
	"verify":           "",
	"version":          "",
}

// subcommands are the verbs of the commands that have them, for
// `COMMAND --help`.
var subcommands = map[string][]string{
	"consent":  {"grant", "withdraw", "show"},
	"suppress": {"add", "remove", "list"},
	"outbox":   {"list", "replay"},
}

// helpError is a command's --help: run prints the usage of its flag set
// and exits 0.
type helpError struct{ fs *flag.FlagSet }

func (helpError) Error() string { return "help requested" }

func (helpError) Unwrap() error { return flag.ErrHelp }

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// printHelp writes the usage of the (sub)command whose flag set is fs:
// its arguments, what it does, and its flags.
func printHelp(w io.Writer, fs *flag.FlagSet) {
	name := fs.Name()
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	line := "usage: optinproxy " + name
	if n > 0 {
		line += " [flags]"
	}
	args, more, _ := strings.Cut(synopses[name], "\n")
	fmt.Fprintln(w, strings.TrimRight(line+" "+args, " "))
	if c, ok := lookup(strings.Fields(name)[0]); ok {
		fmt.Fprintf(w, "\n%s\n", c.summary)
	}
	if more != "" {
		fmt.Fprintln(w, more)
	}
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		// The flags are shown as the README and the errors name them,
		// with two dashes (the flag package prints one; both work).
		var b strings.Builder
		fs.SetOutput(&b)
		fs.PrintDefaults()
		for _, l := range strings.SplitAfter(b.String(), "\n") {
			if rest, ok := strings.CutPrefix(l, "  -"); ok {
				l = "  --" + rest
			}
			io.WriteString(w, l)
		}
	}
}

// printSubcommands answers `COMMAND --help` of a command with verbs.
func printSubcommands(w io.Writer, c command) {
	fmt.Fprintf(w, "usage: optinproxy %s %s [flags] ...\n\n%s\n\n", c.name, strings.Join(subcommands[c.name], "|"), c.summary)
	for _, verb := range subcommands[c.name] {
		name := c.name + " " + verb
		args, _, _ := strings.Cut(synopses[name], "\n")
		fmt.Fprintln(w, strings.TrimRight("  optinproxy "+name+" "+args, " "))
	}
	fmt.Fprintf(w, "\nEach one's flags: optinproxy %s VERB --help\n", c.name)
}
