package main

import (
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"
)

// The flag package's own errors name a flag with one dash and say only
// "parse error"; every command's flags go through parseFlags, so this is
// the one place that says instead which flag, what was given and what
// would be valid.

// refusedValue records the flag whose value Set refused.
type refusedValue struct {
	name, value string
	err         error
}

// checkedValue wraps a flag's Value to record a refused value.
type checkedValue struct {
	flag.Value
	name    string
	refused *refusedValue
}

func (v checkedValue) Set(s string) error {
	err := v.Value.Set(s)
	if err != nil && v.refused.name == "" {
		*v.refused = refusedValue{v.name, s, err}
	}
	return err
}

// checkedBool keeps a bool flag usable without a value (--force).
type checkedBool struct{ checkedValue }

func (checkedBool) IsBoolFlag() bool { return true }

// watchValues wraps every flag of fs so that a refused value is recorded
// in refused; the returned func puts the flags back as they were, so that
// --help still shows their types.
func watchValues(fs *flag.FlagSet, refused *refusedValue) (restore func()) {
	orig := map[string]flag.Value{}
	fs.VisitAll(func(f *flag.Flag) {
		orig[f.Name] = f.Value
		cv := checkedValue{f.Value, f.Name, refused}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			f.Value = checkedBool{cv}
		} else {
			f.Value = cv
		}
	})
	return func() {
		fs.VisitAll(func(f *flag.Flag) { f.Value = orig[f.Name] })
	}
}

// flagError turns the error of fs.Parse into one line for the user.
func flagError(fs *flag.FlagSet, err error, refused refusedValue) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return usagef("unknown flag --%s%s; %s", strings.TrimLeft(name, "-"), guess(fs, strings.TrimLeft(name, "-")), flagList(fs))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		f := fs.Lookup(strings.TrimLeft(name, "-"))
		if w := wanted(f); w != "" {
			return usagef("--%s needs a value: %s", f.Name, w)
		}
		return usagef("--%s needs a value: %s", f.Name, f.Usage)
	}
	if refused.name != "" {
		if w := wanted(fs.Lookup(refused.name)); w != "" {
			return usagef("--%s %q: want %s", refused.name, refused.value, w)
		}
		return usagef("--%s %q: %v", refused.name, refused.value, refused.err)
	}
	return usageError{msg}
}

// wanted says what f takes, by its type; "" for a type of its own.
func wanted(f *flag.Flag) string {
	if g, ok := f.Value.(flag.Getter); ok {
		switch g.Get().(type) {
		case bool:
			return "true or false, or the flag alone for true"
		case int, int64, uint, uint64:
			return "a whole number"
		case float64:
			return "a number"
		case time.Duration:
			return "a duration such as 90s, 15m or 24h"
		}
	}
	return ""
}

// guess suggests the flag that name probably meant: the one it begins,
// or begins with.
func guess(fs *flag.FlagSet, name string) string {
	var found []string
	fs.VisitAll(func(f *flag.Flag) {
		if name != "" && (strings.HasPrefix(f.Name, name) || strings.HasPrefix(name, f.Name)) {
			found = append(found, f.Name)
		}
	})
	if len(found) != 1 {
		return ""
	}
	return fmt.Sprintf(" (did you mean --%s?)", found[0])
}

// flagList names the flags of fs, or says there are none.
func flagList(fs *flag.FlagSet) string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, "--"+f.Name) })
	if len(names) == 0 {
		return fs.Name() + " takes no flags"
	}
	sort.Strings(names)
	return fs.Name() + " takes " + strings.Join(names, ", ")
}
