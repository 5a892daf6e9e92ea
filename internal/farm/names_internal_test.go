package farm

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestShortenMiddleCutsBetweenCharacters: however the limit falls, the
// name shortenMiddle makes is within it, valid UTF-8, and keeps the
// start and the end of the text.
func TestShortenMiddleCutsBetweenCharacters(t *testing.T) {
	for _, s := range []string{
		strings.Repeat("é", 100) + ".png",     // two bytes each
		"x" + strings.Repeat("€", 100) + "_7", // three
		strings.Repeat("😀", 60) + "_0001",     // four
	} {
		for limit := 50; limit <= 120; limit++ {
			got := shortenMiddle(s, limit)
			if len(got) > limit || !utf8.ValidString(got) || !strings.Contains(got, cutMark) {
				t.Errorf("shortenMiddle(%q, %d) = %q (%d bytes)", s, limit, got, len(got))
			}
			head, tail, _ := strings.Cut(got, cutMark)
			if !strings.HasPrefix(s, head) || !strings.HasSuffix(s, tail) || len(tail) < limit-headBytes-len(cutMark)-3 {
				t.Errorf("shortenMiddle(%q, %d) = %q: not the start and end of the text", s, limit, got)
			}
		}
	}
}
