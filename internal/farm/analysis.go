package farm

import (
	"fmt"
	"strconv"
	"strings"
)

// AnalyzeInspection turns what Blender found in a file into the job's
// analysis, adding a warning for everything that will make the render
// differ from what the artist sees on their own machine. The inspection is
// cut to the analysis's bounds first (see MaxAnalysisBytes), so that no
// job stores or shows more than they allow, whatever the file holds.
func AnalyzeInspection(ins Inspection) *Analysis {
	cuts := boundInspection(&ins)
	a := &Analysis{Inspection: ins, Warnings: []Warning{}, ScenesLeftOut: len(cuts.badScenes) + cuts.scenesOver}
	for _, f := range ins.ExternalFiles {
		if f.Missing {
			a.Warnings = append(a.Warnings, Warning{Code: WarnMissingFile, Path: f.Path,
				Message: fmt.Sprintf("%s %q refers to %s, which is not in the upload; it will render as missing (pink for images). Upload a .zip of the project folder with the file in it, or pack it into the .blend (File > External Data > Pack Resources)", f.Type, f.Name, f.Path)})
		}
	}
	for _, s := range ins.Scenes {
		if s.DenoisingEnabled && !ins.DenoiserAvailable && s.Engine == "CYCLES" {
			a.Warnings = append(a.Warnings, Warning{Code: WarnDenoiserUnavailable,
				Message: fmt.Sprintf("scene %q asks for denoising, but this farm's Blender %s has no OpenImageDenoise; it will render without denoising (raise the samples to compensate)", s.Name, ins.BlenderVersion)})
		}
		if s.Camera == "" {
			a.Warnings = append(a.Warnings, Warning{Code: WarnNoCamera,
				Message: fmt.Sprintf("scene %q has no camera, so Blender cannot render it; add a camera and set it as the scene camera", s.Name)})
		}
		if s.IsMovieOutput {
			a.Warnings = append(a.Warnings, Warning{Code: WarnMovieOutput,
				Message: fmt.Sprintf("scene %q writes a movie (%s); the farm renders PNG frames instead and makes the preview video itself", s.Name, s.OutputFormat)})
		}
	}
	if newerVersion(ins.FileVersion, ins.BlenderVersion) {
		a.Warnings = append(a.Warnings, Warning{Code: WarnNewerFile,
			Message: fmt.Sprintf("the file was saved with Blender %s, newer than this farm's %s; features it does not know are lost", ins.FileVersion, ins.BlenderVersion)})
	}
	a.Warnings = append(boundWarnings(a.Warnings), cuts.truncationWarnings()...)
	return a
}

// BoundAnalysis cuts an analysis stored before the analysis had bounds to
// them, as AnalyzeInspection cuts a new one; its warnings are kept, cut
// to their own bound.
func BoundAnalysis(a *Analysis) {
	cuts := boundInspection(&a.Inspection)
	a.ScenesLeftOut += len(cuts.badScenes) + cuts.scenesOver
	a.RenderBlenderVersion, _ = boundText(a.RenderBlenderVersion, MaxAnalysisWordBytes)
	if n := fitList(a.FarmBlenderVersions, MaxAnalysisViewTransforms, MaxAnalysisViewTransformsBytes); n < len(a.FarmBlenderVersions) {
		a.FarmBlenderVersions = a.FarmBlenderVersions[:n]
	}
	a.Warnings = append(boundWarnings(a.Warnings), cuts.truncationWarnings()...)
}

// newerVersion reports whether version a ("4.2.1") is newer than b by major
// and minor number; patch releases do not change the file format.
func newerVersion(a, b string) bool {
	pa, pb := versionParts(a), versionParts(b)
	if pa == nil || pb == nil {
		return false
	}
	for i := 0; i < 2; i++ {
		if pa[i] != pb[i] {
			return pa[i] > pb[i]
		}
	}
	return false
}

func versionParts(v string) []int {
	fields := strings.SplitN(v, ".", 3)
	if len(fields) < 2 {
		return nil
	}
	out := make([]int, 2)
	for i := range out {
		n, err := strconv.Atoi(fields[i])
		if err != nil {
			return nil
		}
		out[i] = n
	}
	return out
}
