package farm

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sharing the farm. Every chunk of a render waits until a render node
// with a free slot can take it; which waiting chunk a freed slot takes is
// decided in three steps:
//
//  1. the worker must be able to render it: the chunk's Requirements (its
//     job's Blender, GPUs, memory and tags) met by the worker's
//     WorkerOffer;
//  2. among the workspaces with such chunks and under their quota, the one
//     whose running chunks divided by its weight are fewest (NextWorkspace);
//  3. within that workspace, the chunk of the highest priority, then of the
//     job whose render was requested first, then the lowest chunk number.

// Job priorities: a job's chunks wait before those of jobs of its
// workspace with a higher priority, and after those of lower ones.
const (
	MinPriority     = 0
	MaxPriority     = 100
	DefaultPriority = 50
)

// CheckPriority refuses a priority outside MinPriority to MaxPriority,
// naming field.
func CheckPriority(field string, p int) error {
	if p < MinPriority || p > MaxPriority {
		return InvalidField(field, "must be between %d (lowest) and %d (highest), not %d; the default is %d", MinPriority, MaxPriority, p, DefaultPriority)
	}
	return nil
}

// GPUTypes are the kinds of GPU Cycles renders with, as Blender names
// them (its compute device types).
var GPUTypes = []string{"CUDA", "OPTIX", "HIP", "ONEAPI", "METAL"}

// Limits on what a render request or a worker may say about GPUs, memory
// and tags.
const (
	// MaxGPUCount is the most GPUs a request may ask for or a worker
	// declare of one type.
	MaxGPUCount = 64
	// MaxMinimumRAM bounds minimumRam, in GiB.
	MaxMinimumRAM = 1 << 16
	// MaxTags is the most tags a request may require or a worker declare.
	MaxTags = 16
	// MaxTagLength is the longest tag.
	MaxTagLength = 64
)

// GPU is a type of GPU a worker renders with and how many of them it has.
type GPU struct {
	Type  string `json:"type"`
	Count int    `json:"count"`
}

func (g GPU) String() string { return g.Type + ":" + strconv.Itoa(g.Count) }

// ParseGPU reads a worker's --gpu: TYPE:COUNT, such as CUDA:2; TYPE alone
// is one GPU.
func ParseGPU(s string) (GPU, error) {
	typ, count, hasCount := strings.Cut(strings.TrimSpace(s), ":")
	g := GPU{Type: strings.ToUpper(typ), Count: 1}
	if !slices.Contains(GPUTypes, g.Type) {
		return GPU{}, fmt.Errorf("GPU type %q is not one of %s", typ, strings.Join(GPUTypes, ", "))
	}
	if hasCount {
		n, err := strconv.Atoi(count)
		if err != nil || n < 1 || n > MaxGPUCount {
			return GPU{}, fmt.Errorf("GPU count %q of %s must be a whole number from 1 to %d", count, g.Type, MaxGPUCount)
		}
		g.Count = n
	}
	return g, nil
}

// ParseGPUs reads a list of GPUs written by FormatGPUs ("CUDA:2,OPTIX:2").
func ParseGPUs(s string) ([]GPU, error) {
	var gpus []GPU
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		g, err := ParseGPU(part)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(gpus, func(o GPU) bool { return o.Type == g.Type }) {
			return nil, fmt.Errorf("GPU type %s is given twice", g.Type)
		}
		gpus = append(gpus, g)
	}
	return gpus, nil
}

// FormatGPUs writes GPUs as ParseGPUs reads them.
func FormatGPUs(gpus []GPU) string {
	parts := make([]string, len(gpus))
	for i, g := range gpus {
		parts[i] = g.String()
	}
	return strings.Join(parts, ",")
}

// CheckTag refuses a tag that is not lower-case letters, digits, '-',
// '_' and '.', starting with a letter or digit, at most MaxTagLength long:
// tags are names an operator types, and they are written into
// comma-separated lists.
func CheckTag(tag string) error {
	if tag == "" || len(tag) > MaxTagLength {
		return fmt.Errorf("tag %q must be 1 to %d characters", tag, MaxTagLength)
	}
	for i, r := range tag {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || i > 0 && (r == '-' || r == '_' || r == '.')
		if !ok {
			return fmt.Errorf("tag %q may hold only lower-case letters, digits, '-', '_' and '.', and must start with a letter or digit", tag)
		}
	}
	return nil
}

// NormalizeTags checks tags (CheckTag, at most MaxTags) and answers them
// sorted, each once.
func NormalizeTags(tags []string) ([]string, error) {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if err := CheckTag(t); err != nil {
			return nil, err
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	if len(out) > MaxTags {
		return nil, fmt.Errorf("%d tags; at most %d", len(out), MaxTags)
	}
	slices.Sort(out)
	return out, nil
}

// ParseTags reads a comma-separated list of tags (a worker's --tags, or
// what the database keeps), normalized.
func ParseTags(s string) ([]string, error) {
	var tags []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return NormalizeTags(tags)
}

// Requirements are what a chunk needs of the worker that renders it: its
// job's Blender, a type of GPU and how many, memory and tags. The zero
// value is met by every worker.
type Requirements struct {
	// BlenderVersion is the full version of the job's Blender; "" is any.
	BlenderVersion string
	// GPUType is one of GPUTypes, "" for a render on the CPU, which any
	// worker does; GPUCount is how many GPUs of that type.
	GPUType  string
	GPUCount int
	// MinimumRAMGiB is the memory a worker must have, in GiB.
	MinimumRAMGiB int
	// Tags are the tags a worker must all have, sorted.
	Tags []string
}

// RequirementsOf are the requirements of a job's chunks, from its final
// configuration.
func RequirementsOf(fc *FinalConfig) Requirements {
	if fc == nil {
		return Requirements{}
	}
	r := Requirements{BlenderVersion: fc.BlenderVersion, MinimumRAMGiB: fc.MinimumRAM, Tags: slices.Clone(fc.RequiredTags)}
	if slices.Contains(GPUTypes, fc.ComputeDeviceType) {
		r.GPUType, r.GPUCount = fc.ComputeDeviceType, max(fc.GPUCount, 1)
	}
	return r
}

// Key is the requirements written as one string, the same for equal
// requirements: "blender=4.3.2;gpu=CUDA:1;ram=16;tags=a,b", without the
// parts that ask for nothing ("" for no requirement at all). The database
// orders waiting chunks by it, so its form must not change.
func (r Requirements) Key() string {
	var parts []string
	if r.BlenderVersion != "" {
		parts = append(parts, "blender="+r.BlenderVersion)
	}
	if r.GPUType != "" {
		parts = append(parts, "gpu="+GPU{Type: r.GPUType, Count: max(r.GPUCount, 1)}.String())
	}
	if r.MinimumRAMGiB > 0 {
		parts = append(parts, "ram="+strconv.Itoa(r.MinimumRAMGiB))
	}
	if len(r.Tags) > 0 {
		parts = append(parts, "tags="+strings.Join(r.Tags, ","))
	}
	return strings.Join(parts, ";")
}

// String says what the requirements ask for, for people: "Blender 4.3.2,
// 1 CUDA GPU, 16 GiB of memory, the tags gpu and fast".
func (r Requirements) String() string {
	var parts []string
	if r.BlenderVersion != "" {
		parts = append(parts, "Blender "+r.BlenderVersion)
	}
	if r.GPUType != "" {
		n := max(r.GPUCount, 1)
		parts = append(parts, fmt.Sprintf("%d %s GPU%s", n, r.GPUType, plural(n)))
	}
	if r.MinimumRAMGiB > 0 {
		parts = append(parts, fmt.Sprintf("%d GiB of memory", r.MinimumRAMGiB))
	}
	switch len(r.Tags) {
	case 0:
	case 1:
		parts = append(parts, "the tag "+r.Tags[0])
	default:
		parts = append(parts, "the tags "+strings.Join(r.Tags[:len(r.Tags)-1], ", ")+" and "+r.Tags[len(r.Tags)-1])
	}
	if len(parts) == 0 {
		return "any render node"
	}
	return strings.Join(parts, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// WorkerOffer is what a worker run offers the farm's chunks: its Blenders,
// its GPUs, its memory and its tags.
type WorkerOffer struct {
	Name            string
	BlenderVersions []string
	GPUs            []GPU
	MemoryBytes     int64
	Tags            []string
}

// gib is a GiB in bytes.
const gib = 1 << 30

// MemoryGiB is the worker's memory in whole GiB, rounded up: the kernel
// keeps part of a machine's memory for itself, so a "32 GB" machine
// reports about 31.3 GiB, and a request for 32 GiB means that machine.
func (o WorkerOffer) MemoryGiB() int {
	return int(math.Ceil(float64(o.MemoryBytes) / gib))
}

// GPUCount is how many GPUs of type the worker has.
func (o WorkerOffer) GPUCount(typ string) int {
	for _, g := range o.GPUs {
		if g.Type == typ {
			return g.Count
		}
	}
	return 0
}

// Meets reports whether a worker offering o can render chunks that need r.
func (o WorkerOffer) Meets(r Requirements) bool {
	return o.unmet(r) == ""
}

// unmet names the request field of the first requirement o does not meet
// ("" when it meets them all), in the order a render request is checked.
func (o WorkerOffer) unmet(r Requirements) string {
	if r.BlenderVersion != "" && !slices.Contains(o.BlenderVersions, r.BlenderVersion) {
		return "blenderVersion"
	}
	if r.GPUType != "" {
		n := o.GPUCount(r.GPUType)
		if n == 0 {
			return "computeDeviceType"
		}
		if n < max(r.GPUCount, 1) {
			return "gpuCount"
		}
	}
	if r.MinimumRAMGiB > 0 && o.MemoryGiB() < r.MinimumRAMGiB {
		return "minimumRam"
	}
	for _, t := range r.Tags {
		if !slices.Contains(o.Tags, t) {
			return "requiredTags"
		}
	}
	return ""
}

// CheckSomeWorkerMeets refuses requirements that none of workers (the
// farm's registered workers, online or not) could ever meet, naming the
// request field that rules out the last of them: a render nobody can take
// would otherwise wait for ever. The Blender version is not checked here
// (the job's Blender is one the farm offered, see PinBlender), nor
// requirements that ask for nothing beyond it: a plain render waits for
// any worker, even on a farm whose workers have not started yet.
func CheckSomeWorkerMeets(r Requirements, workers []WorkerOffer) error {
	r.BlenderVersion = ""
	if r.GPUType == "" && r.MinimumRAMGiB == 0 && len(r.Tags) == 0 {
		return nil
	}
	// The field whose requirement rules out the workers that got furthest.
	order := []string{"computeDeviceType", "gpuCount", "minimumRam", "requiredTags"}
	furthest := -1
	for _, w := range workers {
		field := w.unmet(r)
		if field == "" {
			return nil
		}
		furthest = max(furthest, slices.Index(order, field))
	}
	if furthest < 0 {
		// No worker registered yet: the first thing asked for is what
		// none has.
		switch {
		case r.GPUType != "":
			furthest = 0
		case r.MinimumRAMGiB > 0:
			furthest = 2
		default:
			furthest = 3
		}
	}
	switch furthest {
	case 0:
		return InvalidField("computeDeviceType", "no worker of this farm has a %s GPU (%s); use \"CPU\", or start a worker with --gpu %s:1",
			r.GPUType, gpusOfFarm(workers), r.GPUType)
	case 1:
		return InvalidField("gpuCount", "is %d, and no worker of this farm has that many %s GPUs (%s)", max(r.GPUCount, 1), r.GPUType, gpusOfFarm(workers))
	case 2:
		withGPUs := ""
		if r.GPUType != "" {
			withGPUs = " with the GPUs asked for"
		}
		return InvalidField("minimumRam", "is %d GiB, and no worker of this farm%s has that much memory (the most is %d GiB)",
			r.MinimumRAMGiB, withGPUs, mostMemory(r, workers))
	default:
		asWell := ""
		switch {
		case r.GPUType != "" && r.MinimumRAMGiB > 0:
			asWell = " as well as the GPUs and memory asked for"
		case r.GPUType != "":
			asWell = " as well as the GPUs asked for"
		case r.MinimumRAMGiB > 0:
			asWell = " as well as the memory asked for"
		}
		return InvalidField("requiredTags", "no worker of this farm has the tags %s%s (workers have the tags %s); start one with --tags",
			strings.Join(r.Tags, ", "), asWell, tagsOfFarm(workers))
	}
}

// AnyGPU reports whether some worker has a GPU.
func AnyGPU(workers []WorkerOffer) bool {
	return slices.ContainsFunc(workers, func(w WorkerOffer) bool { return len(w.GPUs) > 0 })
}

func gpusOfFarm(workers []WorkerOffer) string {
	var seen []string
	for _, w := range workers {
		for _, g := range w.GPUs {
			if s := g.String(); !slices.Contains(seen, s) {
				seen = append(seen, s)
			}
		}
	}
	if len(seen) == 0 {
		return "its workers have none"
	}
	slices.Sort(seen)
	return "it has " + strings.Join(seen, ", ")
}

// mostMemory is the most memory, in GiB, of the workers that meet r but
// for its memory.
func mostMemory(r Requirements, workers []WorkerOffer) int {
	most := 0
	r.MinimumRAMGiB = 0
	r.Tags = nil
	for _, w := range workers {
		if w.Meets(r) {
			most = max(most, w.MemoryGiB())
		}
	}
	return most
}

func tagsOfFarm(workers []WorkerOffer) string {
	var seen []string
	for _, w := range workers {
		for _, t := range w.Tags {
			if !slices.Contains(seen, t) {
				seen = append(seen, t)
			}
		}
	}
	if len(seen) == 0 {
		return "none"
	}
	slices.Sort(seen)
	return strings.Join(seen, ", ")
}

// Workspace shares. Weights and quotas are set by the farm's operator
// (renderfarm workspaces set).
const (
	DefaultWeight = 1
	MaxWeight     = 1000
)

// WorkspaceShare is one workspace with chunks waiting that a freed slot
// could take, as NextWorkspace weighs it.
type WorkspaceShare struct {
	ID string
	// Running counts the workspace's chunks given to workers (started or
	// about to), Weight its share of the farm (1 or more).
	Running, Weight int
	// MaxRunning is the most chunks it may have running; 0 is no limit.
	MaxRunning int
	// Budget is the render seconds it may use in a calendar month (UTC),
	// 0 for no budget, and MonthSeconds what its chunks that ended this
	// month used (see Workspace budgets in docs/deployment.md).
	Budget, MonthSeconds float64
	// WaitingSince is when it was last served (a chunk of its given a
	// worker, or ended), or, if later, when its oldest waiting chunk
	// began waiting: how long it has waited.
	WaitingSince time.Time
}

// BudgetSpent reports whether the workspace has used its month's render
// budget: its chunks then wait, and those running finish.
func (s WorkspaceShare) BudgetSpent() bool {
	return s.Budget > 0 && s.MonthSeconds >= s.Budget
}

// NextWorkspace answers the index of the workspace a freed slot goes to,
// -1 when every one is at its quota or has spent its budget: the one whose running chunks divided
// by its weight are fewest (so weights 3 and 1 share the farm 3 to 1), and
// of those the one that has waited longest, then the lowest id, so that
// every replica decides the same.
func NextWorkspace(shares []WorkspaceShare) int {
	best := -1
	for i, s := range shares {
		if s.MaxRunning > 0 && s.Running >= s.MaxRunning || s.BudgetSpent() {
			continue
		}
		if best < 0 || fewerPerWeight(s, shares[best]) {
			best = i
		}
	}
	return best
}

// fewerPerWeight reports whether a comes before b.
func fewerPerWeight(a, b WorkspaceShare) bool {
	// a.Running/a.Weight < b.Running/b.Weight, without division.
	l, r := a.Running*max(b.Weight, 1), b.Running*max(a.Weight, 1)
	if l != r {
		return l < r
	}
	if !a.WaitingSince.Equal(b.WaitingSince) {
		return a.WaitingSince.Before(b.WaitingSince)
	}
	return a.ID < b.ID
}
