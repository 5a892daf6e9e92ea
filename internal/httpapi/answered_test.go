package httpapi_test

import (
	"cmp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/httpapi"
)

// answer is what Options.Answered was told of one request.
type answer struct {
	method, pattern string
	status          int
}

// TestAnsweredIsToldTheRoutePatternNotThePath shows what the metrics'
// API latency is labelled with: the pattern of the route that answered
// (one series per route, whatever the job's id), and "" for a path no
// route takes, so a client cannot make a series per path it invents.
func TestAnsweredIsToldTheRoutePatternNotThePath(t *testing.T) {
	var mu sync.Mutex
	var got []answer
	e := newEnv(t, nil, httpapi.Options{Answered: func(method, pattern string, status int, elapsed time.Duration) {
		if elapsed < 0 {
			t.Errorf("%s %s took %v", method, pattern, elapsed)
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, answer{method, pattern, status})
	}})
	e.do(e.strict, "GET", apiPrefix+"/jobs/"+jobID, "")
	e.do(e.strict, "GET", apiPrefix+"/jobs/"+otherID, "")
	e.do(e.lenient, "GET", apiPrefix+"/no-such-route/"+jobID, "")
	e.do(e.lenient, "GET", apiPrefix+"/jobs/"+jobID, "", "")

	// The server tells Answered once the answer is written; the client
	// may read it a moment before, so the order may differ.
	want := []answer{
		{"GET", "GET " + apiPrefix + "/jobs/{id}", 200},
		{"GET", "GET " + apiPrefix + "/jobs/{id}", 200},
		{"GET", "", 404},
		{"GET", "GET " + apiPrefix + "/jobs/{id}", 401},
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		done := len(got) >= len(want)
		snapshot := slices.Clone(got)
		mu.Unlock()
		if done {
			slices.SortFunc(snapshot, compareAnswers)
			slices.SortFunc(want, compareAnswers)
			if !slices.Equal(snapshot, want) {
				t.Errorf("Answered was told %v; want %v", snapshot, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s Answered was told %v; want %v", snapshot, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func compareAnswers(a, b answer) int {
	return cmp.Or(cmp.Compare(a.method, b.method), cmp.Compare(a.pattern, b.pattern), cmp.Compare(a.status, b.status))
}
