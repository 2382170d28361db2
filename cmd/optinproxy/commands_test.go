package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
)

// TestCommandTable: help lists every command of the table once, in
// alphabetical order as it always has, and each is found by its name.
func TestCommandTable(t *testing.T) {
	var out bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &out}
	if code := run(context.Background(), e, []string{"help"}); code != 0 {
		t.Fatalf("help: status %d", code)
	}
	var listed []string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "  ") {
			listed = append(listed, strings.Fields(line)[0])
		}
	}
	if !slices.IsSorted(listed) || len(slices.Compact(slices.Clone(listed))) != len(listed) {
		t.Errorf("help lists %v: want each command once, sorted", listed)
	}
	if len(listed) != len(commands) {
		t.Errorf("help lists %d commands, the table has %d", len(listed), len(commands))
	}
	for _, c := range commands {
		if _, ok := lookup(c.name); !ok {
			t.Errorf("%s is listed but not found", c.name)
		}
	}
}
