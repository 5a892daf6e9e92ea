package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/renderfarm/renderfarm/bench/internal/benchkit"
)

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func millis(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", benchkit.Ms(d))
	}
	return fmt.Sprintf("%.0f ms", benchkit.Ms(d))
}

// thousands writes n with a comma every three digits.
func thousands(n float64) string {
	s := strconv.FormatFloat(n, 'f', 0, 64)
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[0] != '-' {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	return string(out)
}
