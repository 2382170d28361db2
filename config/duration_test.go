package config

import (
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string // substring of the error; "" for success
	}{
		{"24h", 24 * time.Hour, ""},
		{"730d", 730 * 24 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"0d", 0, ""},
		{"0", 0, ""},
		{"90m", 90 * time.Minute, ""},
		{"1h30m15s", time.Hour + 30*time.Minute + 15*time.Second, ""},
		{" 30d ", 30 * 24 * time.Hour, ""},
		{"-1h", 0, "must not be negative"},
		{"-2d", 0, "must not be negative"},
		{"1d-2h", 0, "invalid duration"},            // an inner sign would read as subtraction
		{"+5m", 0, "invalid duration"},              // signs are not part of the format
		{"", 0, "empty duration"},                   // nothing
		{"30", 0, "invalid duration"},               // a unit is needed
		{"d", 0, "whole number of days"},            // days without a number
		{"1.5d", 0, "whole number of days"},         // days are whole
		{"1d2d", 0, "invalid duration"},             // one day part only
		{"abc", 0, "invalid duration"},              // garbage
		{"today", 0, "whole number of days"},        // garbage with a "d"
		{"99999999999d", 0, "whole number of days"}, // does not fit
		{"106752d", 0, "too long"},                  // beyond time.Duration
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if tt.err == "" {
			if err != nil || time.Duration(got) != tt.want {
				t.Errorf("parseDuration(%q) = %v, %v; want %v", tt.in, time.Duration(got), err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("parseDuration(%q) error = %v, want one containing %q", tt.in, err, tt.err)
		}
	}
}

func TestDurationStringRoundTrip(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{730 * 24 * time.Hour, "730d"},
		{36 * time.Hour, "1d12h"},
		{24 * time.Hour, "1d"},
		{5 * time.Minute, "5m"},
		{12 * time.Hour, "12h"},
		{90 * time.Second, "1m30s"},
		{10 * time.Second, "10s"},
		{1500 * time.Millisecond, "1.5s"},
		{0, "0s"},
	}
	for _, tt := range tests {
		s := Duration(tt.d).String()
		if s != tt.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.d, s, tt.want)
		}
		back, err := parseDuration(s)
		if err != nil || time.Duration(back) != tt.d {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", s, time.Duration(back), err, tt.d)
		}
	}
}

func TestDurationYAML(t *testing.T) {
	var v struct {
		D Duration `yaml:"d"`
	}
	if err := yaml.Unmarshal([]byte("d: 2d\n"), &v); err != nil || time.Duration(v.D) != 48*time.Hour {
		t.Fatalf("unmarshal 2d: %v, %v", time.Duration(v.D), err)
	}
	if err := yaml.Unmarshal([]byte("d: [1h]\n"), &v); err == nil {
		t.Fatal("a list unmarshalled into a Duration")
	}
	out, err := yaml.Marshal(v)
	if err != nil || string(out) != "d: 2d\n" {
		t.Fatalf("marshal = %q, %v", out, err)
	}
}
