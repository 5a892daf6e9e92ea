package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// keyPrefix starts every API key, as Renderjuice keys start with "RJ-", so a
// leaked key is easy to recognise in logs and secret scanners.
const keyPrefix = "RF-"

// CreateAPIKey makes a new key for the named workspace (created if new) and
// returns it; only its hash is stored, so this is the one time it is seen.
func CreateAPIKey(ctx context.Context, st *store.Store, workspace string) (string, error) {
	workspace = strings.TrimSpace(workspace)
	if workspace == "" {
		return "", errors.New("a workspace name is required")
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	key := keyPrefix + hex.EncodeToString(raw)
	err := st.InTx(ctx, func(tx *store.Tx) error {
		ws, err := tx.EnsureWorkspace(ctx, workspace)
		if err != nil {
			return err
		}
		return tx.InsertAPIKey(ctx, store.APIKey{
			ID: uuid.NewString(), WorkspaceID: ws.ID, Hash: hashKey(key), Prefix: key[:len(keyPrefix)+6], CreatedAt: time.Now().UTC(),
		})
	})
	if err != nil {
		return "", err
	}
	return key, nil
}

func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Authenticate finds the workspace of an API key.
func (e *Engine) Authenticate(ctx context.Context, apiKey string) (farm.Principal, error) {
	k, err := e.store.APIKeyByHash(ctx, hashKey(strings.TrimSpace(apiKey)))
	if errors.Is(err, store.ErrNotFound) {
		return farm.Principal{}, &farm.Error{Kind: farm.KindUnauthorized, Code: farm.CodeUnauthorized,
			Message: "the API key is not valid; create one with `renderfarm keys create --workspace NAME`"}
	}
	if err != nil {
		return farm.Principal{}, err
	}
	return farm.Principal{WorkspaceID: k.WorkspaceID, KeyID: k.ID}, nil
}
