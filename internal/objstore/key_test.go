package objstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/objstore"
)

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key  string
		want string // part of the reason; "" means valid
	}{
		{"uploads/0b7c2a/scene.blend", ""},
		{"jobs/4f1e/frames/frame_0001.png", ""},
		{"jobs/4f1e/frames.zip", ""},
		{"a", ""},
		{"uploads/s1/My Scene (v2) é+%.blend", ""},
		{"jobs/.hidden/..dots../x", ""},
		{strings.Repeat("k/", objstore.MaxKeyLen/2-1) + "kk", ""},
		{"a/" + strings.Repeat("s", 255), ""},

		{"", "empty"},
		{"/jobs/1", "relative"},
		{"jobs//1", "empty segment"},
		{"jobs/1/", "empty segment"},
		{".", `"."`},
		{"..", `".."`},
		{"jobs/./1", `"."`},
		{"jobs/../../etc/passwd", `".."`},
		{"../x", `".."`},
		{`jobs\1`, "backslash"},
		{`..\..\x`, "backslash"},
		{"jobs/1\x00", "NUL"},
		{"jobs/1\n", "control"},
		{"jobs/\x7f", "control"},
		{"jobs/\xc3", "UTF-8"},
		{strings.Repeat("k", objstore.MaxKeyLen+1), "longer than 1024"},
		{"a/" + strings.Repeat("s", 256), "segment longer"},
	}
	for _, tc := range tests {
		err := objstore.ValidateKey(tc.key)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("ValidateKey(%.40q) = %v, want nil", tc.key, err)
		case tc.want != "" && (!errors.Is(err, objstore.ErrInvalidKey) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("ValidateKey(%.40q) = %v, want ErrInvalidKey mentioning %q", tc.key, err, tc.want)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	tests := []struct {
		prefix string
		ok     bool
	}{
		{"", true},
		{"jobs/", true},
		{"jobs/4f1e/frames/", true},
		{"jobs/4f1e/frames/frame_00", true},
		{"jobs", true},
		{"/", false},
		{"/jobs", false},
		{"jobs//", false},
		{"../", false},
		{"jobs/../", false},
		{`jobs\`, false},
		{"jobs\x00", false},
	}
	for _, tc := range tests {
		err := objstore.ValidatePrefix(tc.prefix)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, objstore.ErrInvalidKey)) {
			t.Errorf("ValidatePrefix(%q) = %v, want ok=%v", tc.prefix, err, tc.ok)
		}
	}
}
