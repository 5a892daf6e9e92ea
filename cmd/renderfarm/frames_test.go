package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseFrameList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"1-24", []string{"1-24"}},
		{"7", []string{"7"}},
		{"1-10,20,30-40x2", []string{"1-10", "20", "30-40x2"}},
		{" 1-3 , 5 ", []string{"1-3", "5"}},
	}
	for _, tt := range tests {
		got, err := parseFrameList(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("parseFrameList(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseFrameListRefuses(t *testing.T) {
	tests := []struct {
		in, wantMessage string
	}{
		{"", "empty range"},
		{"1-3,", "empty range"},
		{"1,,3", "empty range"},
		{"5-1", `write it as "1-5"`},
		{"1-10x0", "step"},
		{"all", `not of the form "7", "1-250" or "1-250x5"`},
		{"1 3", "not of the form"},
	}
	for _, tt := range tests {
		got, err := parseFrameList(tt.in)
		if err == nil {
			t.Errorf("parseFrameList(%q) = %q, want an error", tt.in, got)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantMessage) || !strings.HasPrefix(err.Error(), "--frames") {
			t.Errorf("parseFrameList(%q) error %q should start with --frames and say %q", tt.in, err, tt.wantMessage)
		}
	}
}

func TestParseResolution(t *testing.T) {
	for in, want := range map[string][]int{"1920x1080": {1920, 1080}, "64X36": {64, 36}, " 1x1 ": {1, 1}} {
		if got, err := parseResolution(in); err != nil || !slices.Equal(got, want) {
			t.Errorf("parseResolution(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1920", "1920x", "x1080", "0x10", "-5x10", "1920*1080", "wide"} {
		if got, err := parseResolution(in); err == nil {
			t.Errorf("parseResolution(%q) = %v, want an error", in, got)
		}
	}
}
