package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseKeyLifetime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"90d", 90 * 24 * time.Hour},
		{"1d", 24 * time.Hour},
		{" 7d ", 7 * 24 * time.Hour},
		{"12h", 12 * time.Hour},
		{"1h30m", 90 * time.Minute},
		{"1s", time.Second},
		{"36500d", 36500 * 24 * time.Hour},
	}
	for _, tt := range tests {
		got, err := parseKeyLifetime(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseKeyLifetime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseKeyLifetimeRefusesNonsense(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"0d", "between 1d and 36500d"},
		{"-1d", "between 1d and 36500d"},
		{"36501d", "between 1d and 36500d"},
		{"99999999999999999999d", "not a number of days"},
		{"1.5d", "not a number of days"},
		{"d", "not a number of days"},
		{"1d12h", "not a lifetime"},
		{"ninety days", "not a lifetime"},
		{"90", "not a lifetime"},
		{"0s", "between 1s and 36500d"},
		{"-5m", "between 1s and 36500d"},
		{"500ms", "between 1s and 36500d"},
		{"900000h", "between 1s and 36500d"},
	}
	for _, tt := range tests {
		got, err := parseKeyLifetime(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseKeyLifetime(%q) = %v, %v; want an error saying %q", tt.in, got, err, tt.want)
		}
	}
}
