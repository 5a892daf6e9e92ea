package farm_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
)

func TestParseBlenderVersion(t *testing.T) {
	tests := []struct {
		in   string
		want farm.BlenderVersion
		ok   bool
	}{
		{"4.3", farm.BlenderVersion{Major: 4, Minor: 3}, true},
		{"4.3.2", farm.BlenderVersion{Major: 4, Minor: 3, Patch: 2, HasPatch: true}, true},
		{"2.79", farm.BlenderVersion{Major: 2, Minor: 79}, true},
		{"10.0.0", farm.BlenderVersion{Major: 10, HasPatch: true}, true},
		{"4", farm.BlenderVersion{}, false},
		{"4.3.2.1", farm.BlenderVersion{}, false},
		{"4.x", farm.BlenderVersion{}, false},
		{"4..3", farm.BlenderVersion{}, false},
		{"-4.3", farm.BlenderVersion{}, false},
		{"+4.3", farm.BlenderVersion{}, false},
		{" 4.3", farm.BlenderVersion{}, false},
		{"4.3 LTS", farm.BlenderVersion{}, false},
		{"99999.0", farm.BlenderVersion{}, false}, // longer than a version ever is
		{"", farm.BlenderVersion{}, false},
	}
	for _, tt := range tests {
		got, ok := farm.ParseBlenderVersion(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseBlenderVersion(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if ok && got.String() != tt.in {
			t.Errorf("ParseBlenderVersion(%q).String() = %q", tt.in, got.String())
		}
	}
}

func TestSortBlenderVersions(t *testing.T) {
	got := farm.SortBlenderVersions([]string{"4.3.2", "3.4.1", "", "4.10.0", "4.3.2", "4.9.1", "bogus"})
	if want := []string{"3.4.1", "4.3.2", "4.9.1", "4.10.0"}; !slices.Equal(got, want) {
		t.Errorf("SortBlenderVersions = %v, want %v (by number, not by text)", got, want)
	}
}

// TestChooseBlender: a file goes to the Blender of its own major.minor,
// else to the oldest newer one, never to an older one.
func TestChooseBlender(t *testing.T) {
	farmOf := func(v ...string) []string { return v }
	tests := []struct {
		name    string
		file    string
		offered []string
		want    string
		ok      bool
	}{
		{"the same major.minor", "4.3", farmOf("3.4.1", "4.3.2"), "4.3.2", true},
		{"the same major.minor, the older of two", "3.4", farmOf("3.4.1", "4.3.2"), "3.4.1", true},
		{"the newest patch of the same major.minor", "4.3", farmOf("4.3.1", "4.3.2", "4.3.0"), "4.3.2", true},
		{"the oldest newer release when the farm lacks the file's", "4.1", farmOf("3.4.1", "4.5.0", "4.3.2"), "4.3.2", true},
		{"the newest patch of the oldest newer release", "4.1", farmOf("4.3.1", "4.3.2", "4.5.0"), "4.3.2", true},
		{"a release newer by its major number", "3.6", farmOf("3.4.1", "4.3.2"), "4.3.2", true},
		{"minor numbers compared as numbers", "4.9", farmOf("4.10.0", "4.2.0"), "4.10.0", true},
		{"never an older one", "4.3", farmOf("3.4.1", "4.2.9"), "", false},
		{"no Blender at all", "3.4", nil, "", false},
		{"a Blender 2.x file", "2.79", farmOf("3.4.1", "4.3.2"), "3.4.1", true},
		{"a file whose version is unknown gets the newest", "", farmOf("3.4.1", "4.3.2"), "4.3.2", true},
		{"versions that do not parse are left out", "4.3", farmOf("4.3.x", "4.4.0"), "4.4.0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := farm.ChooseBlender(tt.file, tt.offered)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ChooseBlender(%q, %v) = %q, %v; want %q, %v", tt.file, tt.offered, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestPinBlender(t *testing.T) {
	offered := []string{"3.4.1", "4.3.1", "4.3.2"}
	for pin, want := range map[string]string{"4.3": "4.3.2", "4.3.1": "4.3.1", "3.4": "3.4.1", "3.4.1": "3.4.1"} {
		got, err := farm.PinBlender(pin, "3.4", offered)
		if err != nil || got != want {
			t.Errorf("PinBlender(%q) = %q, %v; want %q", pin, got, err, want)
		}
	}
	refusals := []struct {
		pin, file string
		offered   []string
		message   string
	}{
		{"4.3.3", "3.4", offered, "no live render node offers Blender 4.3.3; the farm offers 3.4.1, 4.3.1, 4.3.2"},
		{"9.9", "3.4", offered, "no live render node offers Blender 9.9"},
		{"4.3", "3.4", nil, "the farm offers none (no render node is running)"},
		{"3.4", "4.3", offered, "the file was saved with Blender 4.3, which Blender 3.4.1 cannot open; pin 4.3 or newer"},
		{"latest", "3.4", offered, `must be a Blender version such as "4.3" or "4.3.2", not "latest"`},
		{"4.3\n", "3.4", offered, "must be a Blender version"},
	}
	for _, tt := range refusals {
		got, err := farm.PinBlender(tt.pin, tt.file, tt.offered)
		var fe *farm.Error
		if !errors.As(err, &fe) || fe.Kind != farm.KindInvalid || fe.Field != "blenderVersion" || !strings.Contains(fe.Message, tt.message) || got != "" {
			t.Errorf("PinBlender(%q, file %s, %v) = %q, %v; want a 400 about blenderVersion saying %q", tt.pin, tt.file, tt.offered, got, err, tt.message)
		}
	}
}

func TestBlenderTooOldSaysWhatTheFileNeedsAndHowToAddIt(t *testing.T) {
	r := farm.BlenderTooOld("4.3", []string{"3.4.1", "3.6.2"})
	if r.Name != "BLENDER_TOO_OLD" || r.Type != farm.FailValidation {
		t.Errorf("reason = %+v", r)
	}
	for _, want := range []string{"saved with Blender 4.3", "Blender 3.6.2 at newest", "--blender /opt/blender-4.3/blender", "/opt/renderfarm/blender"} {
		if !strings.Contains(r.Message, want) {
			t.Errorf("message %q does not say %q", r.Message, want)
		}
	}
	if r := farm.BlenderTooOld("4.3", nil); !strings.Contains(r.Message, "no render node is running") {
		t.Errorf("with no Blender at all: %q", r.Message)
	}
}
