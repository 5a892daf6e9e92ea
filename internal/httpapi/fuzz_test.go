package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/httpapi"
)

// resolvingFarm answers a render request the way the engine checks one:
// farm.ResolveConfig against the analysis of fullJob's file. It records
// nothing, so that millions of fuzzed requests use no more memory than one.
type resolvingFarm struct {
	*fakeFarm
}

func (resolvingFarm) Authenticate(ctx context.Context, apiKey string) (farm.Principal, error) {
	return testPrincipal, nil
}

func (f resolvingFarm) Render(ctx context.Context, p farm.Principal, id string, cfg *farm.RenderConfig) (*farm.Job, bool, error) {
	if cfg == nil || cfg.IsEmpty() {
		panic("the handler passed on an empty render configuration")
	}
	job := fullJob()
	final, _, err := farm.ResolveConfig(cfg, job.Analysis, farm.WorkerCaps{ExpectedWorkers: 2})
	if err != nil {
		return nil, false, err
	}
	job.RequestedConfig, job.FinalConfig = cfg, final
	return job, false, nil
}

// fuzzMaxBody keeps the body limit within the fuzzer's reach, so that the
// 413 path is explored too.
const fuzzMaxBody = 4 << 10

var errorCode = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// FuzzDecodeRenderRequest sends arbitrary bodies to POST /jobs/{id}/render.
// Whatever the body, the answer is JSON: the job (200), or an error in the
// API's one shape (400, or 413 over the limit) whose field, if any, is
// within requestedRenderConfig; never a 500, never a panic.
func FuzzDecodeRenderRequest(f *testing.F) {
	h := httpapi.New(resolvingFarm{fullFarm()}, httpapi.Options{
		Logger:       slog.New(slog.DiscardHandler),
		MaxBodyBytes: fuzzMaxBody,
	})
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", apiPrefix+"/jobs/"+jobID+"/render", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)

		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q for body %q", ct, body)
		}
		var answer map[string]json.RawMessage
		if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
			t.Fatalf("answer %d is not a JSON object (%v): %s", w.Code, err, w.Body)
		}
		switch w.Code {
		case 200:
			if _, ok := answer["id"]; !ok {
				t.Fatalf("200 without a job: %s", w.Body)
			}
			return
		case 400:
		case 413:
			if len(body) <= fuzzMaxBody {
				t.Fatalf("413 for a body of %d bytes, within the limit of %d", len(body), fuzzMaxBody)
			}
		default:
			t.Fatalf("status %d for body %q: %s", w.Code, body, w.Body)
		}
		var e struct {
			Error struct{ Code, Message, Field string } `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || len(answer) != 1 {
			t.Fatalf("error answer not in the API's shape (%v): %s", err, w.Body)
		}
		known := []string{farm.CodeInvalidJSON, farm.CodeInvalidRequest, farm.CodeInvalidConfig, farm.CodeTooLarge}
		if !errorCode.MatchString(e.Error.Code) || !slices.Contains(known, e.Error.Code) || e.Error.Message == "" {
			t.Fatalf("error %+v: want one of %v with a message", e.Error, known)
		}
		if e.Error.Field != "" && !strings.HasPrefix(e.Error.Field, "requestedRenderConfig") {
			t.Fatalf("error about field %q, which is not in the request", e.Error.Field)
		}
	})
}
