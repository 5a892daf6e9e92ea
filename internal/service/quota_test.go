package service

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// uploadsSent are n uploads of content made through api, each file stored
// straight in the object store as a bucket's presigned PUT stores it: the
// farm hears nothing of it, so no size is recorded until a job is made.
func (f *fixture) uploadsSent(n int, content string) []string {
	f.T.Helper()
	slugs := make([]string, n)
	for i := range slugs {
		ticket, err := f.api.CreateUpload(f.Ctx, f.P, "scene.blend", farm.FileTypeBlend)
		if err != nil {
			f.T.Fatalf("CreateUpload: %v", err)
		}
		f.PutContent(farm.UploadKey(ticket.Slug, "scene.blend"), content)
		slugs[i] = ticket.Slug
	}
	return slugs
}

// createJobsAtOnce asks CreateJob for each slug, all at once: the calls
// wait for one another and are then released together.
func (f *fixture) createJobsAtOnce(slugs []string) ([]*farm.Job, []error) {
	jobs, errs := make([]*farm.Job, len(slugs)), make([]error, len(slugs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, slug := range slugs {
		wg.Go(func() {
			<-start
			jobs[i], errs[i] = f.api.CreateJob(f.Ctx, f.P, slug)
		})
	}
	close(start)
	wg.Wait()
	return jobs, errs
}

// TestConcurrentJobsFromBucketUploadsStayWithinTheQuota: six files sent to
// a bucket's upload URLs, where one fits the workspace's storage quota,
// are made into jobs at the same moment. One job is made; the others are
// refused with STORAGE_QUOTA_EXCEEDED, their files removed, and neither
// their uploads nor a copy made for them is left in the store.
func TestConcurrentJobsFromBucketUploadsStayWithinTheQuota(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		size := int64(len(enginetest.ValidatedScene))
		if err := f.Store.SetWorkspaceMaxStorage(f.Ctx, "studio", size*3/2); err != nil {
			t.Fatal(err)
		}
		slugs := f.uploadsSent(6, enginetest.ValidatedScene)

		jobs, errs := f.createJobsAtOnce(slugs)

		var made *farm.Job
		for i, err := range errs {
			switch {
			case err == nil && made == nil:
				made = jobs[i]
			case err == nil:
				t.Errorf("slug %d made job %s too; the quota holds one file", i, jobs[i].ID)
			case enginetest.ErrorCode(err) != CodeStorageQuotaExceeded:
				t.Errorf("slug %d: %v, want %s", i, err, CodeStorageQuotaExceeded)
			}
		}
		if made == nil {
			t.Fatal("no job was made; the quota has room for one file")
		}
		if n := f.Count("jobs", ""); n != 1 {
			t.Errorf("%d jobs stored, want 1", n)
		}
		objects, err := f.Objects.List(f.Ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		want := farm.JobInputKey(made.ID, "scene.blend")
		if len(objects) != 1 || objects[0].Key != want {
			t.Errorf("objects left: %+v; want only %s, the job's input", objects, want)
		}
		st, err := f.Store.GetWorkspaceStorage(f.Ctx, f.P.WorkspaceID, "")
		if err != nil {
			t.Fatal(err)
		}
		if st.UsedBytes != size {
			t.Errorf("the workspace's files take %d bytes, want %d (the one job's input)", st.UsedBytes, size)
		}
	})
}

// TestConcurrentPutsToLocalUploadURLsStayWithinTheQuota: PUTs to the
// local store's upload URLs arrive at the same moment where the quota has
// room for one of their files. One is taken; the others are refused with
// 413 STORAGE_QUOTA_EXCEEDED before they are stored, so the workspace's
// recorded use stays within its quota. Each round leaves room for one
// file more.
func TestConcurrentPutsToLocalUploadURLsStayWithinTheQuota(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		const size = int64(len(enginetest.ValidatedScene))
		accept := AcceptUploadPut(f.Store)
		for round := int64(1); round <= 5; round++ {
			if err := f.Store.SetWorkspaceMaxStorage(f.Ctx, "studio", round*size+size/2); err != nil {
				t.Fatal(err)
			}
			keys := make([]string, 8)
			for i := range keys {
				ticket, err := f.api.CreateUpload(f.Ctx, f.P, "scene.blend", farm.FileTypeBlend)
				if err != nil {
					t.Fatalf("round %d: CreateUpload: %v", round, err)
				}
				keys[i] = farm.UploadKey(ticket.Slug, "scene.blend")
			}
			errs := make([]error, len(keys))
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, key := range keys {
				wg.Go(func() {
					<-start
					errs[i] = accept(f.Ctx, key, size, nil)
				})
			}
			close(start)
			wg.Wait()

			taken := 0
			for i, err := range errs {
				refusal, refused := errors.AsType[*objstore.PutRefusal](err)
				switch {
				case err == nil:
					taken++
				case !refused || refusal.Status != http.StatusRequestEntityTooLarge || refusal.Code != CodeStorageQuotaExceeded:
					t.Errorf("round %d, PUT %d: %v, want a 413 %s", round, i, err, CodeStorageQuotaExceeded)
				}
			}
			if taken != 1 {
				t.Errorf("round %d: %d PUTs taken, want 1: the quota had room for one file", round, taken)
			}
			st, err := f.Store.GetWorkspaceStorage(f.Ctx, f.P.WorkspaceID, "")
			if err != nil {
				t.Fatal(err)
			}
			if st.UsedBytes > st.MaxBytes {
				t.Fatalf("round %d: the workspace's uploads take %d bytes, past its quota of %d", round, st.UsedBytes, st.MaxBytes)
			}
		}
	})
}

// TestAnUploadRefusedAtJobCreationNoLongerCounts: a file PUT to a local
// upload URL had its size recorded; the quota was lowered before its job
// was asked for, and POST /jobs refused it and removed it. The
// workspace's storage no longer counts it.
func TestAnUploadRefusedAtJobCreationNoLongerCounts(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		size := int64(len(enginetest.ValidatedScene))
		ticket, err := f.api.CreateUpload(f.Ctx, f.P, "scene.blend", farm.FileTypeBlend)
		if err != nil {
			t.Fatal(err)
		}
		key := farm.UploadKey(ticket.Slug, "scene.blend")
		err = AcceptUploadPut(f.Store)(f.Ctx, key, size, func() error {
			f.PutContent(key, enginetest.ValidatedScene)
			return nil
		})
		if err != nil {
			t.Fatalf("the PUT, with no quota: %v", err)
		}
		if err := f.Store.SetWorkspaceMaxStorage(f.Ctx, "studio", size/2); err != nil {
			t.Fatal(err)
		}

		if _, err := f.api.CreateJob(f.Ctx, f.P, ticket.Slug); enginetest.ErrorCode(err) != CodeStorageQuotaExceeded {
			t.Fatalf("CreateJob = %v, want %s", err, CodeStorageQuotaExceeded)
		}
		if f.Exists(key) {
			t.Error("the refused upload's file is still stored")
		}
		st, err := f.Store.GetWorkspaceStorage(f.Ctx, f.P.WorkspaceID, "")
		if err != nil {
			t.Fatal(err)
		}
		if st.UsedBytes != 0 {
			t.Errorf("the workspace's storage counts %d bytes after its only upload was refused and removed, want 0", st.UsedBytes)
		}
	})
}

// TestAPutRacingARefusalOfItsUploadLeavesItsSizeAsStored: POST /jobs
// refuses an upload's file for the quota, lowered since the file came,
// and removes it, while a PUT to the same upload URL sends a smaller file:
// the PUT has recorded the new size and is about to store the file as
// the refusal goes ahead. Once both are over, the workspace's storage
// counts the upload as it is stored: the size of the file there, or
// nothing if none is.
func TestAPutRacingARefusalOfItsUploadLeavesItsSizeAsStored(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		accept := AcceptUploadPut(f.Store)
		ticket, err := f.api.CreateUpload(f.Ctx, f.P, "scene.blend", farm.FileTypeBlend)
		if err != nil {
			t.Fatal(err)
		}
		key := farm.UploadKey(ticket.Slug, "scene.blend")
		refused, smaller := enginetest.ValidatedScene, enginetest.ValidatedScene[:len(enginetest.ValidatedScene)/2]
		err = accept(f.Ctx, key, int64(len(refused)), func() error {
			f.PutContent(key, refused)
			return nil
		})
		if err != nil {
			t.Fatalf("the first PUT, with no quota: %v", err)
		}
		if err := f.Store.SetWorkspaceMaxStorage(f.Ctx, "studio", int64(len(smaller))); err != nil {
			t.Fatal(err)
		}

		recorded, release, put := make(chan struct{}), make(chan struct{}), make(chan error, 1)
		go func() {
			put <- accept(f.Ctx, key, int64(len(smaller)), func() error {
				close(recorded)
				<-release
				_, err := f.Objects.Put(f.Ctx, key, strings.NewReader(smaller), 1<<20)
				return err
			})
		}()
		<-recorded
		waiting := f.lockWaiting()
		refusal, refusalOver := make(chan error, 1), make(chan struct{})
		go func() {
			defer close(refusalOver)
			_, err := f.api.CreateJob(f.Ctx, f.P, ticket.Slug)
			refusal <- err
		}()
		f.awaitOverOrWaiting(refusalOver, waiting)
		close(release)
		if err := <-put; err != nil {
			t.Fatalf("the second PUT: %v", err)
		}
		if err := <-refusal; enginetest.ErrorCode(err) != CodeStorageQuotaExceeded {
			t.Fatalf("CreateJob = %v, want %s", err, CodeStorageQuotaExceeded)
		}

		stored := int64(0)
		info, err := f.Objects.Stat(f.Ctx, key)
		switch {
		case err == nil:
			stored = info.Size
		case !errors.Is(err, objstore.ErrNotFound):
			t.Fatal(err)
		}
		st, err := f.Store.GetWorkspaceStorage(f.Ctx, f.P.WorkspaceID, "")
		if err != nil {
			t.Fatal(err)
		}
		if st.UsedBytes != stored {
			t.Errorf("the workspace's storage counts %d bytes; the upload's file stored is %d bytes (0: none)", st.UsedBytes, stored)
		}
	})
}

// lockWaiting answers whether one of the database's transactions waits
// for another's lock since it was called: on PostgreSQL, a session that
// waits for a lock; on SQLite, a wait for the one connection that every
// transaction holds while it runs.
func (f *fixture) lockWaiting() func() bool {
	f.T.Helper()
	waitsBefore := f.Store.DB().Stats().WaitCount
	return func() bool {
		if f.Store.Dialect() == store.DialectSQLite {
			return f.Store.DB().Stats().WaitCount > waitsBefore
		}
		var waiting int
		err := f.Store.DB().QueryRowContext(f.Ctx, `SELECT COUNT(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		if err != nil {
			f.T.Errorf("count the sessions waiting for a lock: %v", err)
			return true
		}
		return waiting > 0
	}
}

// awaitOverOrWaiting waits, for up to 20 s, until over is closed or
// waiting says a transaction waits for a lock: until what runs has ended,
// or stopped behind a transaction the test holds open.
func (f *fixture) awaitOverOrWaiting(over <-chan struct{}, waiting func() bool) {
	f.T.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !waiting() {
		select {
		case <-over:
			return
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			f.T.Fatal("after 20 s, it has neither ended nor waits for a lock")
		}
	}
}

// TestARefusalLeavesAnUploadMadeIntoAJobMeanwhile: a request for a slug
// refuses its file while another request for the same slug makes a job
// of it. The job's input, which the upload's recorded size now stands
// for, stays counted in the workspace's storage.
func TestARefusalLeavesAnUploadMadeIntoAJobMeanwhile(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		slug := f.uploadsSent(1, enginetest.ValidatedScene)[0]
		refusedAsItWas, err := f.Store.GetUpload(f.Ctx, f.P.WorkspaceID, slug)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.api.CreateJob(f.Ctx, f.P, slug); err != nil {
			t.Fatal(err)
		}

		f.api.removeUploadOverQuota(f.Ctx, refusedAsItWas)

		st, err := f.Store.GetWorkspaceStorage(f.Ctx, f.P.WorkspaceID, "")
		if err != nil {
			t.Fatal(err)
		}
		if size := int64(len(enginetest.ValidatedScene)); st.UsedBytes != size {
			t.Errorf("the workspace's storage counts %d bytes, want %d: the job's input", st.UsedBytes, size)
		}
	})
}

// TestAnUploadWhosePutStoredNothingHoldsNoRoom: a PUT to a local upload
// URL records the file's declared size as it begins, holding its
// workspace's room while the body comes in; the artist's connection then
// drops. The size recorded goes back to what the upload holds: nothing
// for a first PUT, and an earlier PUT's file after it, so that a new
// upload of the file is not refused for room the failed one never used.
func TestAnUploadWhosePutStoredNothingHoldsNoRoom(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		accept, failed := AcceptUploadPut(f.Store), UploadPutFailed(f.Store)
		stat := func(key string) func() (int64, error) {
			return func() (int64, error) {
				info, err := f.Objects.Stat(f.Ctx, key)
				if errors.Is(err, objstore.ErrNotFound) {
					return 0, nil
				}
				return info.Size, err
			}
		}
		used := func() int64 {
			t.Helper()
			st, err := f.Store.GetWorkspaceStorage(f.Ctx, f.P.WorkspaceID, "")
			if err != nil {
				t.Fatal(err)
			}
			return st.UsedBytes
		}
		ticket, err := f.api.CreateUpload(f.Ctx, f.P, "scene.blend", farm.FileTypeBlend)
		if err != nil {
			t.Fatal(err)
		}
		key := farm.UploadKey(ticket.Slug, "scene.blend")

		// The first PUT declares 5 MiB and is cut short.
		if err := accept(f.Ctx, key, 5<<20, nil); err != nil {
			t.Fatal(err)
		}
		if got := used(); got != 5<<20 {
			t.Fatalf("while the body comes in, the workspace counts %d bytes, want the 5 MiB declared", got)
		}
		if err := failed(f.Ctx, key, stat(key)); err != nil {
			t.Fatal(err)
		}
		if got := used(); got != 0 {
			t.Errorf("after a PUT that stored nothing, the workspace counts %d bytes, want 0", got)
		}

		// A PUT stores the file; another, of 5 MiB, is then cut short.
		if err := accept(f.Ctx, key, int64(len(enginetest.ValidatedScene)), func() error {
			f.PutContent(key, enginetest.ValidatedScene)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := accept(f.Ctx, key, 5<<20, nil); err != nil {
			t.Fatal(err)
		}
		if err := failed(f.Ctx, key, stat(key)); err != nil {
			t.Fatal(err)
		}
		if got, want := used(), int64(len(enginetest.ValidatedScene)); got != want {
			t.Errorf("after a second PUT that stored nothing, the workspace counts %d bytes, want the %d of the file stored", got, want)
		}
	})
}

// TestUploadSizesAPutKilledMidBodyLeftAreSetBackAtStart: three uploads
// whose PUTs declared 5 MiB each and were then killed with their serve:
// one stored nothing, one had an earlier PUT's file, and one was made
// into a job. Settled as serve starts again, the first holds no room, the
// second its file's, and the job's is left alone.
func TestUploadSizesAPutKilledMidBodyLeftAreSetBackAtStart(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		accept := AcceptUploadPut(f.Store)
		upload := func(name string) string {
			t.Helper()
			ticket, err := f.api.CreateUpload(f.Ctx, f.P, name, farm.FileTypeBlend)
			if err != nil {
				t.Fatal(err)
			}
			return ticket.Slug
		}
		nothing, earlier := upload("nothing.blend"), upload("earlier.blend")
		earlierKey := farm.UploadKey(earlier, "earlier.blend")
		if err := accept(f.Ctx, earlierKey, int64(len(enginetest.ValidatedScene)), func() error {
			f.PutContent(earlierKey, enginetest.ValidatedScene)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		job, _ := f.UploadedJob(f.api, enginetest.ValidatedScene)
		jobSize := f.Count("uploads", "job_id = ? AND size_bytes > 0", job.ID)
		for slug, name := range map[string]string{nothing: "nothing.blend", earlier: "earlier.blend"} {
			// The PUT that the kill cut short: its size recorded, its body
			// never stored.
			if err := accept(f.Ctx, farm.UploadKey(slug, name), 5<<20, nil); err != nil {
				t.Fatal(err)
			}
		}

		n, err := SettleUploadSizes(f.Ctx, f.Store, f.Objects)

		if err != nil || n != 2 {
			t.Fatalf("SettleUploadSizes = %d, %v; want the 2 uploads set back", n, err)
		}
		for slug, want := range map[string]int64{nothing: 0, earlier: int64(len(enginetest.ValidatedScene))} {
			if got := f.Count("uploads", "slug = ? AND size_bytes = ?", slug, want); got != 1 {
				t.Errorf("upload %s does not record %d bytes", slug, want)
			}
		}
		if got := f.Count("uploads", "job_id = ? AND size_bytes > 0", job.ID); got != jobSize {
			t.Errorf("the job's upload changed: %d rows with a size, were %d", got, jobSize)
		}
		if n, err := SettleUploadSizes(f.Ctx, f.Store, f.Objects); err != nil || n != 0 {
			t.Errorf("settling again = %d, %v; want nothing to do", n, err)
		}
	})
}
