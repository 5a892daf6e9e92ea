package farm

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A .blend records the major.minor of the Blender that saved it ("4.3"); a
// farm runs full releases ("3.4.1", "4.3.2"), several at once. A file
// opens in the Blender of its own major.minor or a newer one, never in an
// older one: Blender 3.4 crashes on a file saved by 4.3. So each job is
// given one of the farm's Blenders, chosen from the file's version, and
// every Blender run of the job (validation, every chunk) uses it.

// BlenderVersion is a Blender release: 4.3.2, or 4.3 when only the major
// and minor numbers are known (a file's header, a request that pins a
// version by its minor release).
type BlenderVersion struct {
	Major, Minor, Patch int
	// HasPatch says whether Patch was given: "4.3" names every 4.3.x.
	HasPatch bool
}

// maxVersionDigits bounds each number of a version, so that a request's
// "blenderVersion" cannot be a number too large to parse or print.
const maxVersionDigits = 4

// ParseBlenderVersion reads "4.3" or "4.3.2" (Blender 2.x's "2.79" too).
func ParseBlenderVersion(s string) (BlenderVersion, bool) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return BlenderVersion{}, false
	}
	nums := make([]int, len(parts))
	for i, p := range parts {
		if p == "" || len(p) > maxVersionDigits || strings.Trim(p, "0123456789") != "" {
			return BlenderVersion{}, false
		}
		nums[i], _ = strconv.Atoi(p)
	}
	v := BlenderVersion{Major: nums[0], Minor: nums[1]}
	if len(nums) == 3 {
		v.Patch, v.HasPatch = nums[2], true
	}
	return v, true
}

// String writes the version as it was given: "4.3" or "4.3.2".
func (v BlenderVersion) String() string {
	if v.HasPatch {
		return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	}
	return fmt.Sprintf("%d.%d", v.Major, v.Minor)
}

// Release is the version's major.minor, which decides the files it opens.
func (v BlenderVersion) Release() BlenderVersion {
	return BlenderVersion{Major: v.Major, Minor: v.Minor}
}

// Compare orders versions by major, minor and then patch; a version
// without a patch sorts before every patch of its release.
func (v BlenderVersion) Compare(o BlenderVersion) int {
	if c := compareInts(v.Major, o.Major); c != 0 {
		return c
	}
	if c := compareInts(v.Minor, o.Minor); c != 0 {
		return c
	}
	if v.HasPatch != o.HasPatch {
		if v.HasPatch {
			return 1
		}
		return -1
	}
	return compareInts(v.Patch, o.Patch)
}

func compareInts(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseOffered reads the full versions a farm offers, ignoring any that
// do not parse, oldest first.
func parseOffered(offered []string) []BlenderVersion {
	var out []BlenderVersion
	for _, s := range offered {
		if v, ok := ParseBlenderVersion(s); ok {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, BlenderVersion.Compare)
	return slices.CompactFunc(out, func(a, b BlenderVersion) bool { return a.Compare(b) == 0 })
}

// SortBlenderVersions sorts versions oldest first and drops repeats and
// what is not a version.
func SortBlenderVersions(versions []string) []string {
	parsed := parseOffered(versions)
	out := make([]string, len(parsed))
	for i, v := range parsed {
		out[i] = v.String()
	}
	return out
}

// ChooseBlender picks, of the versions offered, the Blender that opens a
// file saved with fileVersion ("4.3"): the newest patch of the same
// major.minor when there is one; otherwise the oldest release newer than
// the file (its newest patch), which reads the file with the fewest
// changes; never an older one, which cannot open it. ok is false when
// every version offered is older than the file. A file whose version is
// unknown gets the newest.
func ChooseBlender(fileVersion string, offered []string) (version string, ok bool) {
	versions := parseOffered(offered)
	if len(versions) == 0 {
		return "", false
	}
	file, known := ParseBlenderVersion(fileVersion)
	if !known {
		return versions[len(versions)-1].String(), true
	}
	file = file.Release()
	var chosen *BlenderVersion
	for i := range versions {
		v := versions[i]
		switch rel := v.Release().Compare(file); {
		case rel < 0:
			continue
		case chosen == nil || v.Release().Compare(chosen.Release()) == 0:
			// The first release at or above the file's, and within it the
			// newest patch (versions are sorted oldest first).
			chosen = &versions[i]
		}
	}
	if chosen == nil {
		return "", false
	}
	return chosen.String(), true
}

// NewestBlender is the newest of the versions offered, "" for none.
func NewestBlender(offered []string) string {
	versions := parseOffered(offered)
	if len(versions) == 0 {
		return ""
	}
	return versions[len(versions)-1].String()
}

// PinBlender resolves requestedRenderConfig.blenderVersion ("4.3" or
// "4.3.2") against the versions the farm's live render nodes offer: a
// major.minor takes the newest patch of it. A version no live node offers,
// or one older than the file, which it cannot open, is refused naming the
// field and what there is.
func PinBlender(pin, fileVersion string, offered []string) (string, error) {
	want, ok := ParseBlenderVersion(pin)
	if !ok {
		return "", InvalidField("blenderVersion", "must be a Blender version such as \"4.3\" or \"4.3.2\", not %q", pin)
	}
	versions := parseOffered(offered)
	var found *BlenderVersion
	for i, v := range versions {
		if v.Compare(want) == 0 || (!want.HasPatch && v.Release().Compare(want) == 0) {
			found = &versions[i]
		}
	}
	if found == nil {
		return "", InvalidField("blenderVersion", "no live render node offers Blender %s; the farm offers %s (GET /blender lists them)", pin, offeredList(versions))
	}
	if file, ok := ParseBlenderVersion(fileVersion); ok && found.Release().Compare(file.Release()) < 0 {
		return "", InvalidField("blenderVersion", "the file was saved with Blender %s, which Blender %s cannot open; pin %s or newer, or leave blenderVersion out", file.Release(), found, file.Release())
	}
	return found.String(), nil
}

func offeredList(versions []BlenderVersion) string {
	if len(versions) == 0 {
		return "none (no render node is running)"
	}
	names := make([]string, len(versions))
	for i, v := range versions {
		names[i] = v.String()
	}
	return strings.Join(names, ", ")
}

// BlenderOffer is one Blender version the farm's live render nodes run,
// and how many of them run it.
type BlenderOffer struct {
	Version string `json:"version"`
	Workers int    `json:"workers"`
}

// BlenderOffers is the answer of GET /blender: the versions the farm's
// live render nodes offer, oldest first.
type BlenderOffers struct {
	Versions []BlenderOffer `json:"versions"`
}

// BlenderTooOld is the reason a job fails validation when its file was
// saved by a Blender newer than every one the farm runs: no Blender was
// started, since none of them can open the file.
func BlenderTooOld(fileVersion string, offered []string) *FailedReason {
	newest := NewestBlender(offered)
	have := "no Blender at all (no render node is running)"
	if newest != "" {
		have = "Blender " + newest + " at newest"
	}
	return &FailedReason{Name: ReasonBlenderTooOld, Type: FailValidation, Message: fmt.Sprintf(
		"the file was saved with Blender %s, and this farm runs %s, which cannot open it; "+
			"give the render nodes a Blender %s or newer (an official build unpacked anywhere, passed as "+
			"--blender /opt/blender-%s/blender, or a root file system with usr/bin/blender under "+
			"/opt/renderfarm/blender) and submit the file again", fileVersion, have, fileVersion, fileVersion)}
}

// Reasons a job fails for, as FailedReason.Name, that more than one part
// of the farm gives.
const (
	// ReasonBlenderTooOld: the file is newer than every Blender of the farm.
	ReasonBlenderTooOld = "BLENDER_TOO_OLD"
	// ReasonBlenderCannotOpenFile: the chosen Blender failed to read it.
	ReasonBlenderCannotOpenFile = "BLENDER_CANNOT_OPEN_FILE"
	// ReasonBlenderUnavailable: the Blender a validation or a merge was
	// routed to has had no live render node for longer than the farm's
	// worker timeout, and no Blender the farm runs now will do instead.
	ReasonBlenderUnavailable = "BLENDER_UNAVAILABLE"
)

// BlenderGoneForFile is the reason a job fails validation when the
// Blender its validation was routed to, gone, has had no live render node
// for longer than the worker timeout, and none of the versions the farm
// offers now opens the file, saved with fileVersion.
func BlenderGoneForFile(fileVersion, gone string, workerTimeout time.Duration, offered []string) *FailedReason {
	return &FailedReason{Name: ReasonBlenderUnavailable, Type: FailValidation, Message: fmt.Sprintf(
		"the file was saved with Blender %s and needs Blender %s or newer: it was to be validated by Blender %s, "+
			"which no live render node has run for longer than the farm's worker timeout (%s), and no other Blender "+
			"of the farm opens it (the farm runs %s); start a render node with Blender %s or newer (--blender) and submit the file again",
		fileVersion, fileVersion, gone, workerTimeout, offeredList(parseOffered(offered)), fileVersion)}
}

// BlenderGoneForMerge is the reason a job fails when the merge of frame,
// whose parts Blender gone rendered, waited for longer than the worker
// timeout for a live render node with a Blender of need (gone's
// release, or the version the render request pinned) and the farm
// offers none.
func BlenderGoneForMerge(jobID string, frame int, gone, need string, workerTimeout time.Duration, offered []string) *FailedReason {
	return &FailedReason{Name: ReasonBlenderUnavailable, Type: FailRender, Message: fmt.Sprintf(
		"the parts of frame %d were rendered with Blender %s, and merging them needs Blender %s, "+
			"which no live render node has run for longer than the farm's worker timeout (%s) (the farm runs %s); "+
			"start a render node with Blender %s (--blender) and retry the job (POST /jobs/%s/retry): "+
			"the frames whose parts are all stored are merged without rendering them again",
		frame, gone, need, workerTimeout, offeredList(parseOffered(offered)), need, jobID)}
}
