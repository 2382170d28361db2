package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

func runHashPassword(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("hash-password", flag.ContinueOnError)
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt cost")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		return usagef("--cost %d: want %d to %d", *cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	var password string
	switch len(pos) {
	case 0:
		if password, err = readPassword(e); err != nil {
			return err
		}
	case 1:
		password = pos[0]
	default:
		return usagef("takes at most one argument, the password")
	}
	if password == "" {
		return usagef("empty password")
	}
	if len(password) > 72 {
		// bcrypt ignores everything past 72 bytes; refuse rather than
		// silently accept a longer password that only partly counts.
		return usagef("password longer than 72 bytes (bcrypt's limit)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), *cost)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, string(h))
	return nil
}

// readPassword reads one line: without echo from a terminal, plainly from
// a pipe. The newline is stripped.
func readPassword(e *env) (string, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.stderr, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		return string(b), err
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", usagef("no password on standard input (pipe one line, or give it as the argument)")
	}
	return strings.TrimRight(line, "\r\n"), nil
}
