package httpapi_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/httpapi"
)

func TestAuth(t *testing.T) {
	cases := []struct {
		name, header string
		msgHas       string
	}{
		{"no header", "", "Authorization: Bearer <api key>"},
		{"other scheme", "Basic dXNlcjpwYXNz", `"Basic"`},
		{"bearer without key", "Bearer ", "no API key"},
		{"unknown key", "Bearer RJ-wrong", "unknown API key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, httpapi.Options{})
			r := e.do(e.lenient, "GET", apiPrefix+"/jobs/"+jobID, "", tc.header)
			code, msg, _ := r.apiError(t)
			if r.StatusCode != 401 || code != farm.CodeUnauthorized {
				t.Fatalf("%d %s, want 401 UNAUTHORIZED", r.StatusCode, r.body)
			}
			if !strings.Contains(msg, tc.msgHas) {
				t.Errorf("message %q does not say %q", msg, tc.msgHas)
			}
			if strings.Contains(msg, "dXNlcjpwYXNz") || strings.Contains(msg, "RJ-wrong") {
				t.Errorf("message %q repeats the credential", msg)
			}
			if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
			}
			if calls := e.farm.Calls(); len(calls) != 0 {
				t.Errorf("farm was asked %+v without a valid key", calls)
			}
		})
	}

	t.Run("every API route", func(t *testing.T) {
		for _, tc := range routeCases() {
			if tc.call.Method == "" {
				continue // openapi.json is public
			}
			e := newEnv(t, nil, httpapi.Options{})
			r := e.do(e.lenient, tc.method, apiPrefix+tc.path, tc.body, "")
			if r.StatusCode != 401 {
				t.Errorf("%s %s without a key: %d", tc.method, tc.path, r.StatusCode)
			}
		}
	})

	t.Run("lower-case scheme", func(t *testing.T) {
		e := newEnv(t, nil, httpapi.Options{})
		r := e.do(e.strict, "GET", apiPrefix+"/jobs/"+jobID, "", "bearer "+testKey)
		if r.StatusCode != 200 {
			t.Errorf("%d %s", r.StatusCode, r.body)
		}
	})

	t.Run("public routes", func(t *testing.T) {
		e := newEnv(t, nil, httpapi.Options{})
		for _, path := range []string{apiPrefix + "/openapi.json", "/healthz"} {
			if r := e.do(e.strict, "GET", path, "", ""); r.StatusCode != 200 {
				t.Errorf("%s without a key: %d", path, r.StatusCode)
			}
		}
	})
}

// TestErrorMapping checks the one place where farm errors become answers.
// The render route is used because the document lists every status there.
func TestErrorMapping(t *testing.T) {
	cases := []struct {
		kind   farm.Kind
		status int
		code   string // the code a farm.Error without one gets
	}{
		{farm.KindInvalid, 400, farm.CodeInvalidRequest},
		{farm.KindUnauthorized, 401, farm.CodeUnauthorized},
		{farm.KindForbidden, 403, "FORBIDDEN"},
		{farm.KindNotFound, 404, farm.CodeNotFound},
		{farm.KindConflict, 409, farm.CodeConflict},
		{farm.KindTooLarge, 413, farm.CodeTooLarge},
		{farm.KindRateLimited, 429, farm.CodeRateLimited},
	}
	const body = `{"requestedRenderConfig": {"colorManagementPreset": "default"}}`
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			// As the farm makes them: code, message and field.
			f := fullFarm()
			f.err = fmt.Errorf("engine: %w", &farm.Error{Kind: tc.kind, Code: "SOME_CODE", Message: "what to fix", Field: "someField"})
			e := newEnv(t, f, httpapi.Options{})
			r := e.do(e.strict, "POST", apiPrefix+"/jobs/"+jobID+"/render", body)
			code, msg, field := r.apiError(t)
			if r.StatusCode != tc.status || code != "SOME_CODE" || msg != "what to fix" {
				t.Errorf("%d %s, want %d SOME_CODE", r.StatusCode, r.body, tc.status)
			}
			if tc.kind == farm.KindInvalid {
				if field != "requestedRenderConfig.someField" {
					t.Errorf("field %q, want it named by its path in the body", field)
				}
			} else if field != "someField" {
				t.Errorf("field %q, want someField", field)
			}

			// Made in haste: the answer still has a code and a message.
			f = fullFarm()
			f.err = &farm.Error{Kind: tc.kind}
			e = newEnv(t, f, httpapi.Options{})
			r = e.do(e.strict, "POST", apiPrefix+"/jobs/"+jobID+"/render", body)
			code, msg, _ = r.apiError(t)
			if r.StatusCode != tc.status || code != tc.code || msg == "" {
				t.Errorf("bare error: %d %s, want %d %s with a message", r.StatusCode, r.body, tc.status, tc.code)
			}
			if !strings.Contains(string(r.body), `"error"`) || strings.Contains(string(r.body), `"field"`) {
				t.Errorf("bare error body %s", r.body)
			}
		})
	}
}

func TestInternalErrorsStayInside(t *testing.T) {
	const secret = "pq: connection to 10.0.0.7:5432 refused"
	internals := map[string]error{
		"plain error":           errors.New(secret),
		"farm.Error of no kind": &farm.Error{Kind: farm.KindInternal, Code: "DB", Message: secret},
		"wrapped":               fmt.Errorf("load job: %w", errors.New(secret)),
	}
	for name, ierr := range internals {
		t.Run(name, func(t *testing.T) {
			f := fullFarm()
			f.err = ierr
			e := newEnv(t, f, httpapi.Options{})
			r := e.do(e.strict, "GET", apiPrefix+"/jobs/"+jobID, "")
			code, msg, _ := r.apiError(t)
			if r.StatusCode != 500 || code != farm.CodeInternal {
				t.Fatalf("%d %s, want 500 INTERNAL", r.StatusCode, r.body)
			}
			if strings.Contains(string(r.body), "10.0.0.7") {
				t.Errorf("internals leaked: %s", r.body)
			}
			id := r.Header.Get("X-Request-Id")
			if id == "" || !strings.Contains(msg, id) {
				t.Errorf("message %q does not name the request id %q", msg, id)
			}
			logs := e.log.String()
			if !strings.Contains(logs, "10.0.0.7") || !strings.Contains(logs, id) {
				t.Errorf("the log lacks the error or the request id:\n%s", logs)
			}
		})
	}
}

func TestPanicIsAnInternalError(t *testing.T) {
	f := fullFarm()
	f.panicMsg = "index out of range in the engine"
	e := newEnv(t, f, httpapi.Options{})
	r := e.do(e.strict, "POST", apiPrefix+"/jobs/"+jobID+"/cancel", "")
	if code, _, _ := r.apiError(t); r.StatusCode != 500 || code != farm.CodeInternal || strings.Contains(string(r.body), "engine") {
		t.Errorf("%d %s, want a bare 500", r.StatusCode, r.body)
	}
	if !strings.Contains(e.log.String(), "index out of range in the engine") {
		t.Errorf("the panic was not logged:\n%s", e.log)
	}
	// The server survives it.
	f.panicMsg = ""
	if r := e.do(e.strict, "POST", apiPrefix+"/jobs/"+jobID+"/cancel", ""); r.StatusCode != 200 {
		t.Errorf("after a panic: %d", r.StatusCode)
	}
}

// A farm that answers neither a value nor an error has a bug; the client
// gets a 500, not a null body.
func TestFarmReturningNothing(t *testing.T) {
	routes := routeCases()
	answersNothing := map[string]bool{
		"":                  true, // the farm is not asked
		"RunningProgress":   true, // a nil list is simply empty
		"ListWebhooks":      true,
		"WebhookDeliveries": true,
		"DeleteWebhook":     true, // nothing is all it answers
	}
	for _, tc := range routes {
		if answersNothing[tc.call.Method] {
			continue
		}
		e := newEnv(t, &fakeFarm{}, httpapi.Options{})
		r := e.do(e.strict, tc.method, apiPrefix+tc.path, tc.body)
		if r.StatusCode != 500 {
			t.Errorf("%s %s: %d %s, want 500", tc.method, tc.path, r.StatusCode, r.body)
		}
	}
}

// TestWebhookAndLogRoutesMapFarmErrors sends the farm's errors through the
// webhook routes and the log route. The strict client also proves that the
// document lists every status they answer.
func TestWebhookAndLogRoutesMapFarmErrors(t *testing.T) {
	type farmError struct {
		err         error
		status      int
		code, field string
	}
	common := []farmError{
		{&farm.Error{Kind: farm.KindForbidden, Message: "this key may only read"}, 403, "FORBIDDEN", ""},
		{&farm.Error{Kind: farm.KindRateLimited, Code: farm.CodeRateLimited, Message: "slow down"}, 429, farm.CodeRateLimited, ""},
		{errors.New("database is locked"), 500, farm.CodeInternal, ""},
	}
	limit := fmt.Sprintf("this workspace has %d webhooks, the most it may have; delete one first", farm.MaxWebhooksPerWorkspace)
	specific := map[string][]farmError{
		"JobLog":              {{farm.NotFound("job", jobID), 404, farm.CodeNotFound, ""}},
		"GetWebhook":          {{farm.NotFound("webhook", hookID), 404, farm.CodeNotFound, ""}},
		"DeleteWebhook":       {{farm.NotFound("webhook", hookID), 404, farm.CodeNotFound, ""}},
		"RotateWebhookSecret": {{farm.NotFound("webhook", hookID), 404, farm.CodeNotFound, ""}},
		"WebhookDeliveries":   {{farm.NotFound("webhook", hookID), 404, farm.CodeNotFound, ""}},
		"ListWebhooks":        nil,
		"BlenderVersions":     nil,
		// The farm names body fields as they are; nothing to prefix.
		"CreateWebhook": {
			{&farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: "url", Message: "url: 10.0.0.7 is a private address"}, 400, farm.CodeInvalidRequest, "url"},
			{&farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: "events", Message: `events: "onRenderStart" is not an event`}, 400, farm.CodeInvalidRequest, "events"},
			{&farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Message: limit}, 400, farm.CodeInvalidRequest, ""},
		},
	}
	for _, tc := range routeCases() {
		own, ok := specific[tc.call.Method]
		if !ok {
			continue
		}
		delete(specific, tc.call.Method)
		for _, c := range append(own, common...) {
			f := fullFarm()
			f.err = c.err
			e := newEnv(t, f, httpapi.Options{})
			r := e.do(e.strict, tc.method, apiPrefix+tc.path, tc.body)
			code, msg, field := r.apiError(t)
			if r.StatusCode != c.status || code != c.code || field != c.field {
				t.Errorf("%s %s with %v: %d %s, want %d %s field %q", tc.method, tc.path, c.err, r.StatusCode, r.body, c.status, c.code, c.field)
			}
			if fe, ok := errors.AsType[*farm.Error](c.err); ok && fe.Message != "" && msg != fe.Message {
				t.Errorf("%s %s: message %q, want the farm's %q", tc.method, tc.path, msg, fe.Message)
			}
		}
	}
	for method := range specific {
		t.Errorf("no route case calls %s", method)
	}
}
