package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Duration is a non-negative time.Duration written as a Go duration
// ("24h", "90m") or with a leading day count ("730d", "1d12h"): retention
// periods are naturally given in days, which time.ParseDuration lacks.
type Duration time.Duration

const day = 24 * time.Hour

// parseDuration accepts "[Nd][Go duration]"; at least one part must be
// present. Negative values are refused: no key of the file counts backwards.
func parseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration (use e.g. 730d, 24h, 90m)")
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("duration %q must not be negative", s)
	}
	if strings.ContainsAny(s, "+-") {
		// A sign is only meaningful in front, and only "-" would change the
		// value; refusing both keeps "1d-2h" from meaning 22h.
		return 0, fmt.Errorf("invalid duration %q (use e.g. 730d, 24h, 90m)", s)
	}
	var days time.Duration
	rest := s
	if i := strings.IndexByte(rest, 'd'); i >= 0 {
		n, err := strconv.ParseUint(rest[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: want a whole number of days before \"d\" (e.g. 730d, 1d12h)", s)
		}
		days = time.Duration(n) * day
		if days/day != time.Duration(n) {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		rest = rest[i+1:]
		if rest == "" {
			return Duration(days), nil
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 730d, 24h, 90m)", s)
	}
	total := days + d
	if total < days {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	return Duration(total), nil
}

// String writes whole days with the "d" suffix and drops zero minutes and
// seconds ("730d", "1d12h", "5m"), so that a marshalled default reads as
// the documentation writes it; parseDuration reads it back to the same value.
func (d Duration) String() string {
	td := time.Duration(d)
	prefix := ""
	if td >= day {
		prefix = strconv.FormatInt(int64(td/day), 10) + "d"
		td %= day
		if td == 0 {
			return prefix
		}
	}
	s := td.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return prefix + s
}

// UnmarshalYAML reads a scalar with parseDuration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration such as 730d or 24h, got %s", describe(n))
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes the String form.
func (d Duration) MarshalYAML() (any, error) {
	return d.String(), nil
}
