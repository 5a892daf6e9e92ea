package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
)

func TestInputCacheKeepsFilesByChecksumAndEvictsTheLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	c := newInputCache(filepath.Join(dir, "cache"), 10)
	aaa, ccc, ddd := strings.Repeat("a", 64), strings.Repeat("c", 64), strings.Repeat("d", 64)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	if c.linkTo(aaa, filepath.Join(dir, "miss")) {
		t.Fatal("an empty cache had a file")
	}
	c.add(aaa, write("a", "123456")) // 6 bytes
	old := time.Now().Add(-time.Hour)
	_ = os.Chtimes(filepath.Join(dir, "cache", aaa), old, old)
	if c.linkTo(strings.Repeat("b", 64), filepath.Join(dir, "x")) {
		t.Fatal("a file that was never added was found")
	}
	got := filepath.Join(dir, "job-a-input")
	if !c.linkTo(aaa, got) {
		t.Fatal("the cached file was not found")
	}
	if b, _ := os.ReadFile(got); string(b) != "123456" {
		t.Fatalf("linked file holds %q", b)
	}

	// Using "aaa" made it the most recent, and left its file's times as
	// they were (they are the job's input's too). "ccc" was written two
	// hours ago (a hard link shares its file's times) and not used since,
	// so when "ddd" takes the cache over its 10 bytes, "ccc" goes.
	if info, err := os.Stat(got); err != nil || !info.ModTime().Equal(old) {
		t.Errorf("using the cached file changed its modification time: %v, %v; want %v", info.ModTime(), err, old)
	}
	c.add(ccc, write("c", "ab"))
	_ = os.Chtimes(filepath.Join(dir, "c"), old.Add(-time.Hour), old.Add(-time.Hour))
	c.add(ddd, write("d", "xyz"))
	if _, err := os.Stat(filepath.Join(dir, "cache", ccc)); !os.IsNotExist(err) {
		t.Errorf("the least recently used file was kept")
	}
	for _, keep := range []string{aaa, ddd} {
		if _, err := os.Stat(filepath.Join(dir, "cache", keep)); err != nil {
			t.Errorf("%s was evicted: %v", keep, err)
		}
	}
	// A job's own link outlives eviction.
	if b, _ := os.ReadFile(got); string(b) != "123456" {
		t.Errorf("the job's copy changed: %q", b)
	}
}

func TestInputCacheOff(t *testing.T) {
	if c := newInputCache(t.TempDir(), -1); c != nil {
		t.Fatal("a negative size still made a cache")
	}
	var c *inputCache
	c.add("x", "/nonexistent")
	if c.linkTo("x", filepath.Join(t.TempDir(), "y")) {
		t.Fatal("a nil cache found a file")
	}
}

// A worker removes the files of jobs that ended while another worker held
// them, and keeps those of jobs still going and anything not a job's.
func TestSweepWorkDirsRemovesOnlyEndedJobs(t *testing.T) {
	f := newFixture(t, enginetest.SQLite)
	ended := f.InsertJob(f.api, farm.StatusCanceled)
	going := f.RenderingJob(f.api, 2, 2)
	gone := "0b9a7c1e-8f38-4c4e-9f55-6a3e2a1d5f00" // a job no longer in the database
	for _, dir := range []string{ended.ID, going.ID, gone, "cache"} {
		if err := os.MkdirAll(filepath.Join(f.node.cfg.WorkDir, dir, "input"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.node.sweepWorkDirs(f.Ctx)
	for dir, kept := range map[string]bool{ended.ID: false, gone: false, going.ID: true, "cache": true} {
		_, err := os.Stat(filepath.Join(f.node.cfg.WorkDir, dir))
		if kept != (err == nil) {
			t.Errorf("%s: kept = %v, want %v", dir, err == nil, kept)
		}
	}
}

// Jobs made from the same file share the node's cached copy: their
// inputs are hard links to one file. Preparing one job must leave the
// input another job's chunks render from as it is, the very file it
// recorded (its modification time among what it recorded): a
// preparation found changed is hashed again, and made again, its
// directory removed under any chunk of that job rendering from it, when
// its bytes changed.
func TestJobsOfOneFileKeepEachOthersPreparedInput(t *testing.T) {
	f := newFixture(t, enginetest.SQLite)
	f.node.cache = newInputCache(filepath.Join(t.TempDir(), "cache"), 1<<30)
	f.onSwitchableBucket() // a bucket: inputs are fetched, and cached
	first, second := f.RenderingJob(f.api, 1, 1), f.RenderingJob(f.api, 1, 1)

	in, err := f.node.prepareInput(f.Ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	// Both jobs' files are the one validation checked: the node looks
	// for it in its cache by that checksum.
	for _, job := range []*farm.Job{first, second} {
		job.SceneFile = &farm.SceneFile{SHA256: in.SceneFile.SHA256}
	}
	inUse := filepath.Join(filepath.Dir(in.Source.Path), "texture-still-to-read.png")
	if err := os.WriteFile(inUse, []byte("pixels"), 0o400); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // a file's times tell 10 ms apart on every file system the farm runs on
	if _, err := f.node.prepareInput(f.Ctx, second); err != nil {
		t.Fatal(err)
	}
	again, err := f.node.prepareInput(f.Ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if again.Source != in.Source {
		t.Errorf("the first job's input changed as the second job's was prepared: %+v, then %+v", in.Source, again.Source)
	}
	if _, err := os.Stat(inUse); err != nil {
		t.Errorf("the first job's input was made again, its directory removed, as the second job's was prepared: %v", err)
	}
}

// A prepared input whose file's times changed, but whose bytes did not,
// is reused where it is, rather than removed and made again under the
// chunks rendering from it; one whose bytes changed is made again from
// the job's own copy.
func TestAPreparedInputIsMadeAgainOnlyWhenItsBytesChanged(t *testing.T) {
	f := newFixture(t, enginetest.SQLite)
	f.onSwitchableBucket() // a bucket: the input is a copy in the job's directory
	job := f.RenderingJob(f.api, 1, 1)
	in, err := f.node.prepareInput(f.Ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	job.SceneFile = &farm.SceneFile{SHA256: in.SceneFile.SHA256}
	original, err := os.ReadFile(in.Source.Path)
	if err != nil {
		t.Fatal(err)
	}
	// What a chunk rendering from the input may still have to read (a
	// project's texture, say) lives in the input's directory.
	inUse := filepath.Join(filepath.Dir(in.Source.Path), "texture-still-to-read.png")
	if err := os.WriteFile(inUse, []byte("pixels"), 0o400); err != nil {
		t.Fatal(err)
	}

	touched := time.Now().Add(-time.Hour)
	if err := os.Chtimes(in.Source.Path, touched, touched); err != nil {
		t.Fatal(err)
	}
	again, err := f.node.prepareInput(f.Ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(inUse); err != nil {
		t.Errorf("an input whose file was only touched was made again, its directory removed: %v", err)
	}
	if again.Source.ModTime != touched.UnixNano() {
		t.Errorf("the reused preparation records %+v, want the file as it is now, modified %v", again.Source, touched)
	}

	// Another file put in its place (the bucket's object, and the
	// node's cached copy, are left as they are).
	other := filepath.Join(t.TempDir(), "other.blend")
	if err := os.WriteFile(other, []byte("not the file that was checked"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, in.Source.Path); err != nil {
		t.Fatal(err)
	}
	remade, err := f.node.prepareInput(f.Ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(remade.Source.Path); err != nil || string(got) != string(original) {
		t.Errorf("an input whose bytes changed holds %q, %v; want the job's file again", got, err)
	}
}

// A cached input whose bytes changed on the node (a disk's fault, or a
// hand on the worker's files) is dropped and the job's own copy downloaded
// again; the good copy is cached in its place.
func TestACachedInputThatNoLongerHoldsItsFileIsDownloadedAgain(t *testing.T) {
	f := newFixture(t, enginetest.SQLite)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	f.node.cache = newInputCache(cacheDir, 1<<30)
	bucket := f.onSwitchableBucket() // a bucket: inputs are fetched, and cached
	first, second, third := f.RenderingJob(f.api, 1, 1), f.RenderingJob(f.api, 1, 1), f.RenderingJob(f.api, 1, 1)

	in, err := f.node.prepareInput(f.Ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	sum := in.SceneFile.SHA256
	for _, job := range []*farm.Job{second, third} {
		job.SceneFile = &farm.SceneFile{SHA256: sum}
	}
	// The cached file's bytes change in place: the same file, other bytes.
	cached := filepath.Join(cacheDir, sum)
	if err := os.Chmod(cached, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cached, []byte("BLENDER-v300 but not the bytes that were checked"), 0o600); err != nil {
		t.Fatal(err)
	}

	got, err := f.node.prepareInput(f.Ctx, second)
	if err != nil {
		t.Fatalf("a job of the file failed on the node's spoiled cached copy: %v", err)
	}
	if _, s, err := hashFile(got.Source.Path); err != nil || s != sum {
		t.Errorf("the second job's input hashes to %s (%v), want the checked file's %s", s, err, sum)
	}
	if _, s, err := hashFile(cached); err != nil || s != sum {
		t.Errorf("the cache holds a file hashing to %s (%v), want the good copy, %s", s, err, sum)
	}

	// The cache serves the good copy from now on, with the bucket away.
	bucket.down.Store(true)
	if _, err := f.node.prepareInput(f.Ctx, third); err != nil {
		t.Errorf("a third job of the file, the bucket away, was not prepared from the cache: %v", err)
	}
	bucket.down.Store(false)

	// When the job's own copy in the bucket does not hash to the checksum
	// either, the job is not prepared, and the cache keeps neither file.
	fourth := f.RenderingJob(f.api, 1, 1)
	fourth.SceneFile = &farm.SceneFile{SHA256: sum}
	up, err := f.Store.GetUpload(f.Ctx, fourth.WorkspaceID, fourth.Slug)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.node.objects.Put(f.Ctx, up.JobInputKey(), strings.NewReader("BLENDER-v300 changed in the bucket"), 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cached, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cached, []byte("BLENDER-v300 spoiled again"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.node.prepareInput(f.Ctx, fourth); err == nil || !strings.Contains(err.Error(), "no longer matches its validated checksum") {
		t.Errorf("a job whose own copy changed too was prepared: %v; want its checksum refused", err)
	}
	if _, err := os.Stat(cached); !os.IsNotExist(err) {
		t.Errorf("the cache still holds a file under the checksum (%v), which no file there now hashes to", err)
	}
}

// The cache's files are named by SHA-256 alone: a checksum that is not
// one (read from a database someone wrote to by hand, say) names no file,
// in the cache's folder or out of it.
func TestInputCacheNamesOnlyChecksums(t *testing.T) {
	dir := t.TempDir()
	c := newInputCache(filepath.Join(dir, "cache"), 1<<20)
	outside := filepath.Join(dir, "outside.blend")
	if err := os.WriteFile(outside, []byte("not the cache's"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../outside.blend", strings.Repeat("A", 64), strings.Repeat("a", 63), strings.Repeat("a", 63) + "/", ""} {
		c.add(name, outside)
		if c.linkTo(name, filepath.Join(dir, "linked")) {
			t.Errorf("linkTo(%q) linked a file", name)
		}
		c.drop(name, outside)
		if _, err := os.Stat(outside); err != nil {
			t.Fatalf("drop(%q) removed a file outside the cache: %v", name, err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "cache")); len(entries) != 0 {
		t.Errorf("the cache holds %d files named by no checksum", len(entries))
	}
}

// Two jobs of one file find its cached copy spoiled: the first drops it
// and caches the copy it downloaded; the second, dropping the file it
// found, leaves the good copy cached in its place.
func TestDroppingASpoiledCachedFileLeavesTheCopyCachedSince(t *testing.T) {
	dir := t.TempDir()
	c := newInputCache(filepath.Join(dir, "cache"), 1<<20)
	sum := strings.Repeat("e", 64)
	cached := filepath.Join(dir, "cache", sum)
	spoiled := filepath.Join(dir, "spoiled")
	if err := os.WriteFile(spoiled, []byte("spoiled"), 0o400); err != nil {
		t.Fatal(err)
	}
	c.add(sum, spoiled)
	first, second := filepath.Join(dir, "first-job-input"), filepath.Join(dir, "second-job-input")
	if !c.linkTo(sum, first) || !c.linkTo(sum, second) {
		t.Fatal("the cached file was not linked to both jobs")
	}

	c.drop(sum, first)
	if _, err := os.Stat(cached); !os.IsNotExist(err) {
		t.Fatalf("the spoiled file is still cached: %v", err)
	}
	good := filepath.Join(dir, "first-job-download")
	if err := os.WriteFile(good, []byte("the file"), 0o400); err != nil {
		t.Fatal(err)
	}
	c.add(sum, good)

	c.drop(sum, second)
	if b, err := os.ReadFile(cached); err != nil || string(b) != "the file" {
		t.Errorf("the cache holds %q (%v) after the second job dropped its spoiled file; want the first job's good copy kept", b, err)
	}
}
