package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// parseFrameList reads --frames: comma-separated frame ranges such as
// "1-10,20,30-40x2", as the API's frameRanges. Each range is checked here
// with the farm's own grammar, so that a typo is reported before a file
// is uploaded rather than after validation. Whether the frames exist in
// the scene is for the server to say: only it has read the file.
func parseFrameList(s string) ([]string, error) {
	var ranges []string
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if _, err := farm.ParseFrameRange(part); err != nil {
			if part == "" {
				return nil, fmt.Errorf("--frames %q has an empty range; separate ranges with single commas, as in \"1-10,20,30-40x2\"", s)
			}
			return nil, fmt.Errorf("--frames: %v", err)
		}
		ranges = append(ranges, part)
	}
	return ranges, nil
}

// parseFrameSpan reads `progress --frames`: a span of frame numbers,
// "1001-2000", or one frame, "7".
func parseFrameSpan(s string) (first, last int, err error) {
	r, err := farm.ParseFrameSpan(s)
	if err != nil {
		return 0, 0, fmt.Errorf("--frames must be a span of frames such as 1001-2000, or one frame such as 7; %v", err)
	}
	return r.Start, r.End, nil
}

// parseResolution reads --resolution as width and height in pixels:
// "1920x1080".
func parseResolution(s string) ([]int, error) {
	wText, hText, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
	w, wErr := strconv.Atoi(wText)
	h, hErr := strconv.Atoi(hText)
	if !ok || wErr != nil || hErr != nil || w < 1 || h < 1 {
		return nil, fmt.Errorf("--resolution %q is not WIDTHxHEIGHT in pixels, such as 1920x1080", s)
	}
	return []int{w, h}, nil
}
