package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/httpapi"
	"github.com/renderfarm/renderfarm/internal/outage"
)

// A database that is down, as its driver reports it: the connection is
// refused.
var errDatabaseDown = fmt.Errorf("read job: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})

// TestEveryRouteAnswersADatabaseOutageWith503: whatever a route asks of the
// farm, a database that does not answer is a 503 UNAVAILABLE with
// Retry-After, saying it is temporary and naming nothing of the farm; the
// strict client checks the document describes it on every route.
func TestEveryRouteAnswersADatabaseOutageWith503(t *testing.T) {
	for _, tc := range routeCases() {
		if tc.call.Method == "" {
			continue // the farm is not asked
		}
		t.Run(tc.name, func(t *testing.T) {
			f := fullFarm()
			f.err = errDatabaseDown
			e := newEnv(t, f, httpapi.Options{})
			r := e.do(e.strict, tc.method, apiPrefix+tc.path, tc.body)
			checkUnavailable(t, r, "the farm's database")
		})
	}
}

// TestTheKeyLookupAnswersADatabaseOutageWith503: the API key cannot be
// checked without the database; that is no reason to call the key bad.
func TestTheKeyLookupAnswersADatabaseOutageWith503(t *testing.T) {
	f := fullFarm()
	f.authErr = errDatabaseDown
	e := newEnv(t, f, httpapi.Options{})
	checkUnavailable(t, e.do(e.strict, "GET", apiPrefix+"/jobs", ""), "the farm's database")
}

func checkUnavailable(t *testing.T, r reply, part string) {
	t.Helper()
	code, msg, _ := r.apiError(t)
	if r.StatusCode != 503 || code != farm.CodeUnavailable || r.Header.Get("Retry-After") != "5" {
		t.Fatalf("%d %s, Retry-After %q; want 503 UNAVAILABLE with Retry-After 5", r.StatusCode, r.body, r.Header.Get("Retry-After"))
	}
	if !strings.Contains(msg, part) || !strings.Contains(msg, "temporary") || strings.Contains(msg, "refused") {
		t.Errorf("message %q; want it to name %s, say it is temporary, and tell nothing of the farm", msg, part)
	}
}

// TestAFullDiskIsAnswered507: a write that found no space, on the
// request's way, is 507 STORAGE_FULL, not a 500.
func TestAFullDiskIsAnswered507(t *testing.T) {
	f := fullFarm()
	f.err = fmt.Errorf("store upload: %w", syscall.ENOSPC)
	e := newEnv(t, f, httpapi.Options{})
	r := e.do(e.strict, "POST", apiPrefix+"/uploads", `{"fileName": "scene.blend", "fileType": "blend"}`)
	if code, msg, _ := r.apiError(t); r.StatusCode != 507 || code != farm.CodeStorageFull || !strings.Contains(msg, "disk space") {
		t.Errorf("%d %s; want 507 STORAGE_FULL saying the farm is out of disk space", r.StatusCode, r.body)
	}
}

// TestAnErrorMetWhileTheDatabaseIsDownIsTheOutage: an error the farm does
// not recognise, met while the readiness check finds the database out, is
// answered as the outage, not as a fault of the server.
func TestAnErrorMetWhileTheDatabaseIsDownIsTheOutage(t *testing.T) {
	f := fullFarm()
	f.err = errors.New("sql: Scan error on column index 0: converting NULL to string is unsupported")
	ready := func(context.Context) error { return outage.Errorf(outage.Database, "ping: timeout") }
	e := newEnv(t, f, httpapi.Options{Ready: ready})
	checkUnavailable(t, e.do(e.strict, "GET", apiPrefix+"/jobs/"+jobID, ""), "the farm's database")

	// With the database up, the same error is the server's fault.
	e = newEnv(t, f, httpapi.Options{Ready: func(context.Context) error { return nil }})
	if r := e.do(e.strict, "GET", apiPrefix+"/jobs/"+jobID, ""); r.StatusCode != 500 {
		t.Errorf("%d %s, want 500", r.StatusCode, r.body)
	}
}

func TestReadyz(t *testing.T) {
	for _, tt := range []struct {
		name      string
		ready     func(context.Context) error
		status    int
		saying    string
		notSaying string
	}{
		{"no check", nil, 200, `"ready"`, ""},
		{"all answer", func(context.Context) error { return nil }, 200, `"ready"`, ""},
		{"the database is out", func(context.Context) error {
			return outage.Errorf(outage.Database, "dial tcp 10.1.2.3:5432: connect: connection refused")
		}, 503, "the farm's database is not answering", "10.1.2.3"},
		{"the bucket is out", func(context.Context) error {
			return outage.Errorf(outage.Bucket, "Head http://s3.internal:9000/farm/x: connection refused")
		}, 503, "the farm's file store is not answering", "s3.internal"},
		{"stopping", func(context.Context) error { return httpapi.ErrStopping }, 503, "stopping", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, httpapi.Options{Ready: tt.ready})
			r := e.do(e.strict, "GET", "/readyz", "")
			if r.StatusCode != tt.status || !strings.Contains(string(r.body), tt.saying) || (tt.notSaying != "" && strings.Contains(string(r.body), tt.notSaying)) {
				t.Errorf("%d %s; want %d saying %q and not %q", r.StatusCode, r.body, tt.status, tt.saying, tt.notSaying)
			}
			if tt.status == 503 && r.Header.Get("Retry-After") == "" {
				t.Error("a 503 without Retry-After")
			}
			// A probe that passes, sent every few seconds to every
			// replica, is not logged at info; one that fails is.
			if logged := strings.Contains(e.log.String(), "path=/readyz"); logged != (tt.status != 200) {
				t.Errorf("the probe answered %d was logged at info: %v; want only a failing one:\n%s", r.StatusCode, logged, e.log)
			}
		})
	}
}
