package client

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The events a webhook can subscribe to. onRenderComplete is Renderjuice's;
// renderfarm adds the other two.
const (
	EventRenderComplete = "onRenderComplete"
	EventRenderFail     = "onRenderFail"
	EventStatusChange   = "onStatusChange"
)

// Headers of a webhook delivery.
const (
	// HeaderTimestamp carries the unix seconds the delivery was signed at.
	HeaderTimestamp = "X-Renderjuice-Timestamp"
	// HeaderSignature carries the lowercase hex HMAC-SHA256, keyed with the
	// webhook's secret, of "{timestamp}.{raw body}".
	HeaderSignature = "X-Renderjuice-Signature"
	// HeaderDeliveryID stays the same on every retry of one event, so a
	// receiver can drop duplicates.
	HeaderDeliveryID = "X-Renderfarm-Delivery"
	// HeaderEvent names the event.
	HeaderEvent = "X-Renderfarm-Event"
)

// DefaultSignatureTolerance is how old a delivery's timestamp may be, as
// Renderjuice advises receivers: five minutes.
const DefaultSignatureTolerance = 5 * time.Minute

// Webhook is a receiver of a workspace's job events. Secret is only set in
// the answers of CreateWebhook and RotateWebhookSecret: keep it then.
type Webhook struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// WebhookDelivery is one attempt to deliver an event: what the receiver
// answered (HTTPStatus) or why no answer came (Error), and when the next
// attempt is due, if one is.
type WebhookDelivery struct {
	ID          string     `json:"id"`
	DeliveryID  string     `json:"deliveryId"`
	Event       string     `json:"event"`
	JobID       string     `json:"jobId"`
	Attempt     int        `json:"attempt"`
	AttemptedAt time.Time  `json:"attemptedAt"`
	HTTPStatus  *int       `json:"httpStatus"`
	Error       *string    `json:"error"`
	DurationMs  int64      `json:"durationMs"`
	NextRetryAt *time.Time `json:"nextRetryAt"`
}

// WebhookEvent is the body of any webhook delivery; which fields are set
// depends on Event.
type WebhookEvent struct {
	Event       string `json:"event"`
	Status      Status `json:"status"`
	JobID       string `json:"jobId"`
	WorkspaceID string `json:"workspaceId"`
	// CompletedAt and Outputs are set for onRenderComplete; Outputs is nil
	// when the job has no frames.
	CompletedAt *time.Time `json:"completedAt,omitempty"`
	Outputs     *struct {
		Frames []string `json:"frames"`
	} `json:"outputs,omitempty"`
	// FailedAt and FailedReason are set for onRenderFail.
	FailedAt     *time.Time    `json:"failedAt,omitempty"`
	FailedReason *FailedReason `json:"failedReason,omitempty"`
	// PreviousStatus and ChangedAt are set for onStatusChange.
	PreviousStatus Status     `json:"previousStatus,omitempty"`
	ChangedAt      *time.Time `json:"changedAt,omitempty"`
	// SuspendedReason is set for onStatusChange to suspended: why the job
	// waits ([SuspendedOnRequest], [SuspendedScoutFramesReady]).
	SuspendedReason string `json:"suspendedReason,omitempty"`
}

// ErrBadSignature is returned by VerifyWebhook for a delivery that was not
// signed with the secret, or whose timestamp is out of tolerance.
var ErrBadSignature = errors.New("webhook signature does not verify")

// VerifyWebhook checks that a delivery was signed with secret within
// tolerance of now (0 means DefaultSignatureTolerance), and decodes it.
// Pass the raw body exactly as received: the signature covers its bytes.
func VerifyWebhook(secret string, header http.Header, body []byte, tolerance time.Duration) (*WebhookEvent, error) {
	return verifyWebhookAt(secret, header, body, tolerance, time.Now())
}

func verifyWebhookAt(secret string, header http.Header, body []byte, tolerance time.Duration, now time.Time) (*WebhookEvent, error) {
	if tolerance <= 0 {
		tolerance = DefaultSignatureTolerance
	}
	ts, err := strconv.ParseInt(header.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: no valid %s header", ErrBadSignature, HeaderTimestamp)
	}
	if age := now.Sub(time.Unix(ts, 0)); math.Abs(float64(age)) > float64(tolerance) {
		return nil, fmt.Errorf("%w: timestamp is %s away from now, more than %s", ErrBadSignature, age.Round(time.Second), tolerance)
	}
	got, err := hex.DecodeString(header.Get(HeaderSignature))
	if err != nil || len(got) != sha256.Size {
		return nil, fmt.Errorf("%w: no valid %s header", ErrBadSignature, HeaderSignature)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return nil, ErrBadSignature
	}
	var ev WebhookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("webhook body: %w", err)
	}
	return &ev, nil
}

// CreateWebhook registers url to receive events (one or more of
// EventRenderComplete, EventRenderFail, EventStatusChange). The answer
// carries the secret that deliveries are signed with; it is not shown again.
func (c *Client) CreateWebhook(ctx context.Context, url string, events []string) (*Webhook, error) {
	in := struct {
		URL    string   `json:"url"`
		Events []string `json:"events"`
	}{url, events}
	var w Webhook
	if _, err := c.call(ctx, "create webhook", http.MethodPost, "/webhooks", nil, in, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// ListWebhooks lists the workspace's webhooks, without their secrets.
func (c *Client) ListWebhooks(ctx context.Context) ([]Webhook, error) {
	var out struct {
		Webhooks []Webhook `json:"webhooks"`
	}
	if _, err := c.call(ctx, "list webhooks", http.MethodGet, "/webhooks", nil, nil, &out); err != nil {
		return nil, err
	}
	if out.Webhooks == nil {
		out.Webhooks = []Webhook{}
	}
	return out.Webhooks, nil
}

// GetWebhook returns one webhook, without its secret.
func (c *Client) GetWebhook(ctx context.Context, id string) (*Webhook, error) {
	var out struct {
		Data *Webhook `json:"data"`
	}
	op := "get webhook " + id
	if _, err := c.call(ctx, op, http.MethodGet, webhookPath(id, ""), nil, nil, &out); err != nil {
		return nil, err
	}
	if out.Data == nil {
		return nil, fmt.Errorf("%s: the answer has no data", op)
	}
	return out.Data, nil
}

// DeleteWebhook removes a webhook; its undelivered events are dropped.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	_, err := c.call(ctx, "delete webhook "+id, http.MethodDelete, webhookPath(id, ""), nil, nil, nil)
	return err
}

// RotateWebhookSecret gives a webhook a new secret and returns it.
func (c *Client) RotateWebhookSecret(ctx context.Context, id string) (*Webhook, error) {
	var w Webhook
	if _, err := c.call(ctx, "rotate webhook secret "+id, http.MethodPost, webhookPath(id, "/rotate-secret"), nil, nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// WebhookDeliveries lists a webhook's delivery attempts, newest first.
func (c *Client) WebhookDeliveries(ctx context.Context, id string) ([]WebhookDelivery, error) {
	var out struct {
		Deliveries []WebhookDelivery `json:"deliveries"`
	}
	if _, err := c.call(ctx, "list deliveries of webhook "+id, http.MethodGet, webhookPath(id, "/deliveries"), nil, nil, &out); err != nil {
		return nil, err
	}
	if out.Deliveries == nil {
		out.Deliveries = []WebhookDelivery{}
	}
	return out.Deliveries, nil
}

// JobLog returns the tail of the Blender log that explains a job's last
// failure; no lines when there is none.
func (c *Client) JobLog(ctx context.Context, id string) ([]string, error) {
	var out struct {
		Lines []string `json:"lines"`
	}
	op := "get log of job " + id
	path, err := jobPath(op, id, "/log")
	if err != nil {
		return nil, err
	}
	if _, err := c.call(ctx, op, http.MethodGet, path, nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Lines, nil
}

func webhookPath(id, suffix string) string {
	return "/webhooks/" + url.PathEscape(id) + suffix
}
