package client

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func signed(secret string, ts int64, body string) http.Header {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts, 10) + "." + body))
	h := http.Header{}
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, hex.EncodeToString(mac.Sum(nil)))
	return h
}

func TestVerifyWebhook(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := `{"event":"onRenderComplete","status":"completed","jobId":"j1","workspaceId":"w1","completedAt":"2027-01-15T08:00:00Z","outputs":{"frames":["https://farm/f1.png"]}}`
	cases := []struct {
		name    string
		header  http.Header
		body    string
		wantErr bool
	}{
		{"signed now", signed("s3cret", now.Unix(), body), body, false},
		{"signed four minutes ago", signed("s3cret", now.Add(-4*time.Minute).Unix(), body), body, false},
		{"signed six minutes ago is a replay", signed("s3cret", now.Add(-6*time.Minute).Unix(), body), body, true},
		{"signed six minutes ahead", signed("s3cret", now.Add(6*time.Minute).Unix(), body), body, true},
		{"another secret", signed("other", now.Unix(), body), body, true},
		{"body changed after signing", signed("s3cret", now.Unix(), body), body + " ", true},
		{"no headers", http.Header{}, body, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := verifyWebhookAt("s3cret", tc.header, []byte(tc.body), 0, now)
			if tc.wantErr {
				if !errors.Is(err, ErrBadSignature) {
					t.Fatalf("err = %v, want ErrBadSignature", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.Event != EventRenderComplete || ev.JobID != "j1" || ev.Outputs == nil || len(ev.Outputs.Frames) != 1 || ev.CompletedAt == nil {
				t.Errorf("decoded %+v", ev)
			}
		})
	}
}
