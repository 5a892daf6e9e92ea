package client_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"

	"github.com/renderfarm/renderfarm/client"
)

// A receiver checks each delivery's signature with the secret that
// CreateWebhook returned, drops duplicates by delivery id, and answers 2xx
// quickly; anything else is retried by the farm.
func ExampleVerifyWebhook() {
	secret := os.Getenv("RENDERFARM_WEBHOOK_SECRET")
	seen := map[string]bool{} // use a database in a real receiver
	http.HandleFunc("/renderfarm", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read error", http.StatusBadRequest)
			return
		}
		ev, err := client.VerifyWebhook(secret, r.Header, body, 0)
		if errors.Is(err, client.ErrBadSignature) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id := r.Header.Get(client.HeaderDeliveryID)
		if seen[id] {
			return // a retry of an event already handled
		}
		seen[id] = true
		switch ev.Event {
		case client.EventRenderComplete:
			if ev.Outputs != nil {
				fmt.Printf("job %s completed; first frame at %s\n", ev.JobID, ev.Outputs.Frames[0])
			}
		case client.EventRenderFail:
			fmt.Printf("job %s failed: %s\n", ev.JobID, ev.FailedReason.Message)
		case client.EventStatusChange:
			fmt.Printf("job %s: %s -> %s\n", ev.JobID, ev.PreviousStatus, ev.Status)
		}
	})
	log.Fatal(http.ListenAndServe(":9000", nil))
}
