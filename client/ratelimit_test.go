package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
)

// refuseFirst answers the first n requests of a route with 429 and a
// Retry-After of retryAfter, then hands over to next; it records the
// bodies it was sent.
type refuseFirst struct {
	n          int
	retryAfter string
	next       http.HandlerFunc

	mu     sync.Mutex
	bodies []string
}

func (rf *refuseFirst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rf.mu.Lock()
	rf.bodies = append(rf.bodies, string(b))
	refuse := len(rf.bodies) <= rf.n
	rf.mu.Unlock()
	if refuse {
		w.Header().Set("Retry-After", rf.retryAfter)
		writeError(w, http.StatusTooManyRequests, client.CodeRateLimited, "too many requests; send the request again in "+rf.retryAfter+" s", "")
		return
	}
	rf.next(w, r)
}

func (rf *refuseFirst) sent() []string {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	return append([]string(nil), rf.bodies...)
}

func createdJob(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 201, jobWithStatus("j1", client.StatusCreated))
}

// A 429 did nothing on the server, so the client sends the same request
// again once the server's Retry-After has passed.
func TestRateLimitedRequestIsSentAgainAfterRetryAfter(t *testing.T) {
	f := newFakeServer(t)
	rf := &refuseFirst{n: 1, retryAfter: "1", next: createdJob}
	f.handle("POST /jobs", rf.ServeHTTP)

	start := time.Now()
	job, err := f.client().CreateJob(context.Background(), "slug-1")

	if err != nil || job.ID != "j1" {
		t.Fatalf("CreateJob = %+v, %v; want the job after one retry", job, err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("sent again after %v, before the second Retry-After asked for", waited)
	}
	sent := rf.sent()
	if len(sent) != 2 || sent[0] != `{"slug":"slug-1"}` || sent[1] != sent[0] {
		t.Errorf("bodies sent = %q, want the same body twice", sent)
	}
}

func TestRateLimitRetriesCanBeTurnedOff(t *testing.T) {
	f := newFakeServer(t)
	rf := &refuseFirst{n: 1, retryAfter: "7", next: createdJob}
	f.handle("POST /jobs", rf.ServeHTTP)

	_, err := f.client(client.WithRateLimitRetries(0)).CreateJob(context.Background(), "slug-1")

	var ae *client.APIError
	if !client.IsRateLimited(err) || !errors.As(err, &ae) || ae.Code != client.CodeRateLimited || ae.RetryAfter != 7*time.Second {
		t.Fatalf("CreateJob = %v (%+v), want a 429 RATE_LIMITED asking for 7 s", err, ae)
	}
	if n := len(rf.sent()); n != 1 {
		t.Errorf("sent %d times, want once", n)
	}
}

// The client does not sit out a long wait by itself, nor one past the
// caller's deadline: the caller decides.
func TestLongRetryAfterIsTheCallersToWait(t *testing.T) {
	f := newFakeServer(t)
	long := &refuseFirst{n: 1, retryAfter: "3600", next: createdJob}
	f.handle("POST /jobs", long.ServeHTTP)
	start := time.Now()
	_, err := f.client().CreateJob(context.Background(), "slug-1")
	if !client.IsRateLimited(err) || time.Since(start) > 10*time.Second {
		t.Errorf("with an hour's Retry-After: %v after %v, want the 429 at once", err, time.Since(start))
	}

	g := newFakeServer(t)
	g.handle("POST /jobs", (&refuseFirst{n: 1, retryAfter: "30", next: createdJob}).ServeHTTP)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = g.client().CreateJob(ctx, "slug-1")
	if !client.IsRateLimited(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("with a deadline before the retry: %v, want the 429 and the deadline", err)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	f := newFakeServer(t)
	always := &refuseFirst{n: 1 << 30, retryAfter: "0", next: createdJob}
	f.handle("POST /jobs", always.ServeHTTP)

	_, err := f.client(client.WithRateLimitRetries(3)).CreateJob(context.Background(), "slug-1")

	if !client.IsRateLimited(err) {
		t.Fatalf("CreateJob = %v, want the last 429", err)
	}
	if n := len(always.sent()); n != 4 {
		t.Errorf("sent %d times, want once and 3 retries", n)
	}
}

func TestDeleteJobUsesItsRoute(t *testing.T) {
	f := newFakeServer(t)
	f.handle("DELETE /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"id": "`+r.PathValue("id")+`", "status": "completed", "output": {"isDeletedForClient": true}}`)
	})
	f.handle("DELETE /jobs/running", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 400, client.CodeInvalidState, "cannot delete a job that is rendering; cancel it first", "")
	})
	c := f.client()

	job, err := c.DeleteJob(context.Background(), "j1")
	if err != nil || job.ID != "j1" || !job.Output.IsDeletedForClient {
		t.Errorf("DeleteJob = %+v, %v; want j1 with its output deleted", job, err)
	}
	if _, err := c.DeleteJob(context.Background(), "running"); !client.IsInvalidState(err) {
		t.Errorf("DeleteJob of a running job = %v, want INVALID_STATE", err)
	}
	if _, err := c.DeleteJob(context.Background(), ""); err == nil {
		t.Error("DeleteJob with an empty id was sent")
	}
}

func TestRetryAfterAsAnHTTPDate(t *testing.T) {
	f := newFakeServer(t)
	at := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	f.handle("POST /jobs", (&refuseFirst{n: 1, retryAfter: at, next: createdJob}).ServeHTTP)

	_, err := f.client(client.WithRateLimitRetries(0)).CreateJob(context.Background(), "slug-1")

	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("CreateJob = %v, want an *APIError", err)
	}
	if ae.RetryAfter < 85*time.Second || ae.RetryAfter > 90*time.Second {
		t.Errorf("Retry-After %q read as %v, want about 90 s", at, ae.RetryAfter)
	}
}
