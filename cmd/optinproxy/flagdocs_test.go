package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// helpFlag is a flag's line in --help: two dashes, as users type it.
var helpFlag = regexp.MustCompile(`(?m)^  --([a-z][a-z0-9-]*)`)

// Every flag of every command and subcommand, as its --help shows it, is
// named (as --flag) in the README or a document under docs/, so that a
// newcomer can find it without reading the code.
func TestEveryFlagIsDocumented(t *testing.T) {
	var docs strings.Builder
	files, _ := filepath.Glob("../../docs/*.md")
	for _, f := range append(files, "../../README.md") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs.Write(b)
	}
	found := 0
	for _, c := range commands {
		for _, name := range invocations(c) {
			_, out, _ := runHere(append(append([]string{}, name...), "--help")...)
			for _, m := range helpFlag.FindAllStringSubmatch(out, -1) {
				found++
				named := regexp.MustCompile(`--` + regexp.QuoteMeta(m[1]) + `([^a-z0-9-]|$)`)
				if !named.MatchString(docs.String()) {
					t.Errorf("optinproxy %s --%s is in no document (README.md, docs/*.md)", strings.Join(name, " "), m[1])
				}
			}
		}
	}
	if found < 20 {
		t.Errorf("found %d flags in the commands' --help; is the help still printed with two dashes?", found)
	}
}
