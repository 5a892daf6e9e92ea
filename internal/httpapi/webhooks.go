package httpapi

import (
	"net/http"

	"github.com/renderfarm/renderfarm/internal/farm"
)

func (a *api) createWebhook(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	const example = `{"url": "https://pipeline.example.com/renderfarm", "events": ["onRenderComplete", "onRenderFail", "onStatusChange"]}`
	var req struct {
		URL    string   `json:"url"`
		Events []string `json:"events"`
	}
	if err := a.decode(w, r, &req, example); err != nil {
		return err
	}
	if req.URL == "" {
		return missing("url", "send the http or https URL the farm should POST events to, as in "+example)
	}
	if len(req.Events) == 0 {
		return missing("events", `send the events to receive, one or more of "onRenderComplete", "onRenderFail" and "onStatusChange", as in `+example)
	}
	h, err := a.farm.CreateWebhook(r.Context(), p, req.URL, req.Events)
	if err != nil {
		return err
	}
	return writeWebhook(w, http.StatusCreated, h, true)
}

func (a *api) listWebhooks(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	hooks, err := a.farm.ListWebhooks(r.Context(), p)
	if err != nil {
		return err
	}
	out := make([]farm.Webhook, len(hooks))
	for i, h := range hooks {
		out[i] = wireWebhook(h, false)
	}
	return writeJSON(w, http.StatusOK, struct {
		Webhooks []farm.Webhook `json:"webhooks"`
	}{out})
}

func (a *api) getWebhook(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	id, err := webhookID(r)
	if err != nil {
		return err
	}
	h, err := a.farm.GetWebhook(r.Context(), p, id)
	if err != nil {
		return err
	}
	if h == nil {
		return errNoResult
	}
	// Wrapped like GET /jobs/{id}, which is what a Renderjuice client
	// expects of a GET by id.
	return writeJSON(w, http.StatusOK, struct {
		Data farm.Webhook `json:"data"`
	}{wireWebhook(*h, false)})
}

func (a *api) deleteWebhook(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	id, err := webhookID(r)
	if err != nil {
		return err
	}
	if err := a.farm.DeleteWebhook(r.Context(), p, id); err != nil {
		return err
	}
	writeNoContent(w)
	return nil
}

func (a *api) rotateWebhookSecret(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	id, err := webhookID(r)
	if err != nil {
		return err
	}
	h, err := a.farm.RotateWebhookSecret(r.Context(), p, id)
	if err != nil {
		return err
	}
	return writeWebhook(w, http.StatusOK, h, true)
}

func (a *api) webhookDeliveries(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	id, err := webhookID(r)
	if err != nil {
		return err
	}
	list, err := a.farm.WebhookDeliveries(r.Context(), p, id)
	if err != nil {
		return err
	}
	out := make([]farm.WebhookDelivery, len(list))
	for i, d := range list {
		out[i] = wireDelivery(d)
	}
	return writeJSON(w, http.StatusOK, struct {
		Deliveries []farm.WebhookDelivery `json:"deliveries"`
	}{out})
}

// writeWebhook answers a webhook bare, with its secret when the route is
// one that shows it.
func writeWebhook(w http.ResponseWriter, status int, h *farm.Webhook, withSecret bool) error {
	if h == nil {
		return errNoResult
	}
	return writeJSON(w, status, wireWebhook(*h, withSecret))
}
