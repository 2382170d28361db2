package config

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with the configuration.
type Problem struct {
	// Key is the dotted path of the key ("smtp.users[1].password_hash"),
	// or "" when the problem concerns no key (a syntax error, an unknown
	// environment variable).
	Key string
	// Line is the 1-based line in the file, or 0 when the value came from
	// the environment or from the defaults.
	Line int
	// Env names the OPTINPROXY_* variable the value came from, if any.
	Env string
	// Msg says what is wrong, without the key.
	Msg string
}

// format writes the problem as one line of Errors.Error.
func (p Problem) format(file string) string {
	var b strings.Builder
	switch {
	case p.Line > 0 && file != "":
		b.WriteString(file + ":" + strconv.Itoa(p.Line) + ": ")
	case p.Line > 0:
		b.WriteString("line " + strconv.Itoa(p.Line) + ": ")
	case p.Env != "":
		b.WriteString(p.Env + ": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Errors is the error Load returns: every problem found, decode and
// validation alike, so that one run of check-config shows them all.
type Errors struct {
	// File is the path given to Load, "" when there was none.
	File     string
	Problems []Problem
}

// Error prints one problem per line: "FILE:LINE: KEY: MSG" for a value
// from the file, "OPTINPROXY_X: KEY: MSG" for one from the environment,
// "KEY: MSG" for a default.
func (e *Errors) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.format(e.File)
	}
	return strings.Join(lines, "\n")
}

// problems collects Problems while Load runs.
type problems struct {
	list []Problem
}

// maxProblems bounds the list: a file whose aliases repeat one mistake a
// million times needs no million-line report.
const maxProblems = 1000

func (ps *problems) add(p Problem) {
	switch {
	case len(ps.list) < maxProblems:
		ps.list = append(ps.list, p)
	case len(ps.list) == maxProblems:
		ps.list = append(ps.list, Problem{Msg: "too many problems; the rest are not shown"})
	}
}

// err returns nil or an *Errors with the problems in file order; problems
// without a line keep the order they were found in, after the others.
func (ps *problems) err(file string) error {
	if len(ps.list) == 0 {
		return nil
	}
	list := slices.Clone(ps.list)
	order := func(p Problem) int {
		if p.Line == 0 {
			return math.MaxInt
		}
		return p.Line
	}
	slices.SortStableFunc(list, func(a, b Problem) int {
		return cmp.Compare(order(a), order(b))
	})
	return &Errors{File: file, Problems: list}
}
