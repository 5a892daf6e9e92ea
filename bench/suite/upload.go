package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/bench/internal/benchkit"
)

// ---- 3. upload: 1 GiB through a presigned URL against cp ----

const uploadBytes = 1 << 30

type uploadRun struct {
	cp, cpSync, put, plainPut time.Duration
	rssBefore, rssPeak        int64 // KiB
	hwmBefore, hwmAfter       int64 // KiB
}

// growth is how much more memory serve held at its peak during the
// upload than before it: the highest resident size sampled, or the high
// water mark if it rose (it catches a peak between two samples).
func (r uploadRun) growth() int64 {
	peak := r.rssPeak
	if r.hwmAfter > r.hwmBefore {
		peak = max(peak, r.hwmAfter)
	}
	return max(0, peak-r.rssBefore)
}

func (b *bench) measureUpload() {
	fmt.Printf("\n== 3. upload: 1 GiB through a presigned URL of serve, against cp on the same disk\n")
	meter := benchkit.StartCPUMeter()
	dir := b.TempDir("upload")
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "big.blend")
	writeRandomFile(src, uploadBytes)

	f := b.localFarm("upload")
	serve := f.serve("--workers", "0")
	defer f.Stop()
	plain, stopPlain := plainUploadServer(dir)
	defer stopPlain()

	var runs []uploadRun
	for run := 1; run <= b.runs; run++ {
		var r uploadRun
		dst := filepath.Join(dir, "copy.blend")
		syscall.Sync()
		start := time.Now()
		b.run("cp", src, dst)
		r.cp = time.Since(start)
		fsyncFile(dst)
		r.cpSync = time.Since(start)
		os.Remove(dst)

		ticket, err := f.client().CreateUpload(b.Ctx, "big.blend", "blend")
		if err != nil {
			benchkit.Fatalf("create upload: %v", err)
		}
		syscall.Sync()
		r.rssBefore = benchkit.ProcStatusKB(fmt.Sprintf("/proc/%d/status", serve.Pid()), "VmRSS")
		r.hwmBefore = benchkit.ProcStatusKB(fmt.Sprintf("/proc/%d/status", serve.Pid()), "VmHWM")
		stopSampling := sampleRSS(serve.Pid(), &r.rssPeak)
		start = time.Now()
		b.run("curl", "-sS", "-f", "-T", src, "-o", "/dev/null", ticket.UploadURL)
		r.put = time.Since(start)
		stopSampling()
		r.hwmAfter = benchkit.ProcStatusKB(fmt.Sprintf("/proc/%d/status", serve.Pid()), "VmHWM")
		stored := filepath.Join(f.Dir, "objects", "uploads", ticket.Slug, "big.blend")
		if fi, err := os.Stat(stored); err != nil || fi.Size() != uploadBytes {
			benchkit.Fatalf("the upload was not stored whole at %s: %v", stored, err)
		}
		os.Remove(stored)

		syscall.Sync()
		start = time.Now()
		b.run("curl", "-sS", "-f", "-T", src, "-o", "/dev/null", plain+"/copy.blend")
		r.plainPut = time.Since(start)
		os.Remove(dst)

		runs = append(runs, r)
		fmt.Printf("upload run %d: cp %s (with fsync %s), presigned PUT to serve %s, PUT to a minimal Go server %s; serve's resident memory %d KiB before, %d KiB at most during (high water mark %d → %d KiB)\n",
			run, secs(r.cp), secs(r.cpSync), secs(r.put), secs(r.plainPut), r.rssBefore, r.rssPeak, r.hwmBefore, r.hwmAfter)
	}
	os.Remove(src)

	cp := benchkit.Median(runs, func(r uploadRun) time.Duration { return r.cp })
	cpSync := benchkit.Median(runs, func(r uploadRun) time.Duration { return r.cpSync })
	put := benchkit.Median(runs, func(r uploadRun) time.Duration { return r.put })
	plainPut := benchkit.Median(runs, func(r uploadRun) time.Duration { return r.plainPut })
	var growth []float64
	for _, r := range runs {
		growth = append(growth, float64(r.growth())/1024)
	}
	peakGrowth := benchkit.MedianFloat(growth)
	rate := func(d time.Duration) string { return fmt.Sprintf("%.0f MiB/s", uploadBytes/(1<<20)/d.Seconds()) }

	var out strings.Builder
	fmt.Fprintf(&out, "3. Upload of a 1 GiB file (random bytes), all on the same disk, sync(2) before each: `curl -T` to a presigned URL of serve (the local store: streamed to a temp file, fsync, rename), against `cp` (GNU cp, which copies in the kernel) and `cp` followed by fsync of the copy, and against `curl -T` to a minimal Go server that copies the body to a file and fsyncs it (the floor of any upload over HTTP here):\n\n")
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "transfer\ttime\trate\tcp time / this time")
	fmt.Fprintf(tw, "cp\t%s\t%s\t1.00\n", secs(cp), rate(cp))
	fmt.Fprintf(tw, "cp, then fsync\t%s\t%s\t%.2f\n", secs(cpSync), rate(cpSync), cp.Seconds()/cpSync.Seconds())
	fmt.Fprintf(tw, "curl -T to a minimal Go server\t%s\t%s\t%.2f\n", secs(plainPut), rate(plainPut), cp.Seconds()/plainPut.Seconds())
	fmt.Fprintf(tw, "curl -T to serve's presigned URL\t%s\t%s\t%.2f\n", secs(put), rate(put), cp.Seconds()/put.Seconds())
	tw.Flush()
	fmt.Fprintf(&out, "\nserve's memory during the upload grew by %.1f MiB at most (median of the runs; resident size sampled every 10 ms, and the kernel's high water mark).\n", peakGrowth)
	fmt.Fprintf(&out, "\n%s\n", meter.Report())
	b.detail(out.String())

	ratio := cp.Seconds() / put.Seconds()
	b.result(result{"3", "1 GiB upload through a presigned URL (local store)", fmt.Sprintf("%s (%s)", secs(put), rate(put)),
		fmt.Sprintf("cp %s (%s)", secs(cp), rate(cp)), fmt.Sprintf("%.2f", ratio), "≥ 0.9", met(ratio >= 0.9)})
	b.result(result{"3", "  the same against cp + fsync / a minimal Go HTTP server", secs(put),
		fmt.Sprintf("%s / %s", secs(cpSync), secs(plainPut)), fmt.Sprintf("%.2f / %.2f", cpSync.Seconds()/put.Seconds(), plainPut.Seconds()/put.Seconds()), "", ""})
	b.result(result{"3", "serve's peak memory growth during the upload", fmt.Sprintf("%.1f MiB", peakGrowth), "", "", "< 64 MiB", met(peakGrowth < 64)})
}

// writeRandomFile writes size random bytes to path.
func writeRandomFile(path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	var seed [32]byte
	rng := rand.NewChaCha8(seed)
	if _, err := io.CopyN(f, rng, size); err != nil {
		benchkit.Fatalf("write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		benchkit.Fatalf("%v", err)
	}
}

func fsyncFile(path string) {
	f, err := os.Open(path)
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		benchkit.Fatalf("fsync %s: %v", path, err)
	}
}

// sampleRSS records the highest resident size of process pid every 10 ms
// until the returned function is called.
func sampleRSS(pid int, peak *int64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			*peak = max(*peak, benchkit.ProcStatusKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS"))
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// plainUploadServer serves PUT /NAME, writing the body to dir/NAME and
// fsyncing it: an upload over HTTP with nothing else around it.
func plainUploadServer(dir string) (url string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Create(filepath.Join(dir, filepath.Base(r.URL.Path)))
		if err == nil {
			_, err = io.Copy(f, r.Body)
			err = errors.Join(err, f.Sync(), f.Close())
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }
}

// run runs a command that must succeed.
func (b *bench) run(name string, args ...string) {
	if out, err := exec.CommandContext(b.Ctx, name, args...).CombinedOutput(); err != nil {
		benchkit.Fatalf("%s: %v\n%s", name, err, out)
	}
}
