package packer

import (
	"strconv"
	"strings"
)

// majorMinor cuts a Blender version such as "3.4.1" to the "3.4" that
// decides which files it reads; "" when v is not a version.
func majorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return ""
	}
	for _, p := range parts[:2] {
		if _, err := strconv.Atoi(p); err != nil {
			return ""
		}
	}
	return parts[0] + "." + parts[1]
}

// newer reports whether Blender version a is newer than b by major and
// minor number ("4.3" than "3.4"); a version that does not parse is never
// newer.
func newer(a, b string) bool {
	pa, pb := versionNumbers(a), versionNumbers(b)
	if pa == nil || pb == nil {
		return false
	}
	if pa[0] != pb[0] {
		return pa[0] > pb[0]
	}
	return pa[1] > pb[1]
}

func versionNumbers(v string) []int {
	mm := majorMinor(v)
	if mm == "" {
		return nil
	}
	major, minor, _ := strings.Cut(mm, ".")
	a, _ := strconv.Atoi(major)
	b, _ := strconv.Atoi(minor)
	return []int{a, b}
}
