package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// keyPrefix starts every API key, as Renderjuice keys start with "RJ-", so a
// leaked key is easy to recognise in logs and secret scanners.
const keyPrefix = "RF-"

// MaxKeyNameLength is the most characters a key's name may have: enough
// to say what the key is for, short enough for a table row.
const MaxKeyNameLength = 64

// lastUseResolution is how precisely a key's last use is kept: the
// database is written at most once per this per key, not on every request.
const lastUseResolution = time.Minute

// NewAPIKey describes a key to create.
type NewAPIKey struct {
	// Workspace is the name of the key's workspace, created if new.
	Workspace string
	// Name says what the key is for; it may be empty.
	Name string
	// ExpiresAt is when the key stops working; zero: never.
	ExpiresAt time.Time
}

// CreatedAPIKey is a key just made: the key itself, which is never
// stored and so never shown again, and what is stored of it.
type CreatedAPIKey struct {
	Key  string
	Info store.APIKeyInfo
}

// CreateAPIKey makes a new key, without a name or an expiry, for the named
// workspace (created if new) and returns it; only its hash is stored, so
// this is the one time it is seen.
func CreateAPIKey(ctx context.Context, st *store.Store, workspace string) (string, error) {
	created, err := IssueAPIKey(ctx, st, NewAPIKey{Workspace: workspace})
	return created.Key, err
}

// CreateFirstAPIKey makes a key, as CreateAPIKey does, if the farm has
// none, and says whether it made it: serve's first start shows the key it
// made, the one time it is seen. The key is looked for and made under the
// store's first-key lock (InFirstKeyTx), so of the processes that call it
// at once on a farm without a key exactly one makes a key, and the others
// answer made false.
func CreateFirstAPIKey(ctx context.Context, st *store.Store, workspace string) (key string, made bool, err error) {
	k, err := newAPIKey(NewAPIKey{Workspace: workspace})
	if err != nil {
		return "", false, err
	}
	err = st.InFirstKeyTx(ctx, func(tx *store.Tx) error {
		n, err := tx.CountAPIKeys(ctx)
		if err != nil || n > 0 {
			return err
		}
		if _, err := k.save(ctx, tx); err != nil {
			return err
		}
		made = true
		return nil
	})
	if err != nil || !made {
		return "", false, err
	}
	return k.key, true, nil
}

// IssueAPIKey makes the key req describes. Only the key's hash is stored,
// so the key in the answer is the one time it is seen. A request that
// makes no sense is refused with a *farm.Error of KindInvalid.
func IssueAPIKey(ctx context.Context, st *store.Store, req NewAPIKey) (CreatedAPIKey, error) {
	k, err := newAPIKey(req)
	if err != nil {
		return CreatedAPIKey{}, err
	}
	var info store.APIKeyInfo
	err = st.InTx(ctx, func(tx *store.Tx) error {
		info, err = k.save(ctx, tx)
		return err
	})
	if err != nil {
		return CreatedAPIKey{}, err
	}
	return CreatedAPIKey{Key: k.key, Info: info}, nil
}

// apiKeyToStore is a key made and not yet stored: the key, and its row
// in its workspace, named.
type apiKeyToStore struct {
	key       string
	workspace string
	row       store.APIKey
}

// newAPIKey makes the key req describes, refusing a request that makes
// no sense with a *farm.Error of KindInvalid.
func newAPIKey(req NewAPIKey) (apiKeyToStore, error) {
	workspace := strings.TrimSpace(req.Workspace)
	if workspace == "" {
		return apiKeyToStore{}, farm.Invalid(farm.CodeInvalidRequest, "a workspace name is required")
	}
	name, err := checkKeyName(req.Name)
	if err != nil {
		return apiKeyToStore{}, err
	}
	now := time.Now().UTC()
	var expires *time.Time
	if !req.ExpiresAt.IsZero() {
		if !req.ExpiresAt.After(now) {
			return apiKeyToStore{}, farm.Invalid(farm.CodeInvalidRequest, "the expiry %s is not in the future", req.ExpiresAt.UTC().Format(time.RFC3339))
		}
		t := req.ExpiresAt.UTC()
		expires = &t
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return apiKeyToStore{}, err
	}
	key := keyPrefix + hex.EncodeToString(raw)
	return apiKeyToStore{key: key, workspace: workspace, row: store.APIKey{
		ID: uuid.NewString(), Hash: hashKey(key), Prefix: key[:len(keyPrefix)+6],
		Name: name, CreatedAt: now, ExpiresAt: expires,
	}}, nil
}

// save stores the key's hash in tx, creating its workspace if new, and
// answers what may be shown of it.
func (k apiKeyToStore) save(ctx context.Context, tx *store.Tx) (store.APIKeyInfo, error) {
	ws, err := tx.EnsureWorkspace(ctx, k.workspace)
	if err != nil {
		return store.APIKeyInfo{}, err
	}
	row := k.row
	row.WorkspaceID = ws.ID
	if err := tx.InsertAPIKey(ctx, row); err != nil {
		return store.APIKeyInfo{}, err
	}
	return tx.APIKeyInfoByID(ctx, row.ID)
}

// checkKeyName trims a key's name and refuses one that is too long or
// holds control characters, which would garble the tables and terminals
// it is shown in.
func checkKeyName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if n := utf8.RuneCountInString(name); n > MaxKeyNameLength {
		return "", farm.Invalid(farm.CodeInvalidRequest, "the key's name has %d characters; give at most %d", n, MaxKeyNameLength)
	}
	if !utf8.ValidString(name) {
		return "", farm.Invalid(farm.CodeInvalidRequest, "the key's name is not valid UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", farm.Invalid(farm.CodeInvalidRequest, "the key's name holds the control character %U; use printable characters", r)
		}
	}
	return name, nil
}

// ListAPIKeys lists the keys of the named workspace, or of every workspace
// when it is "": never a key or its hash, which the answer has no room for.
func ListAPIKeys(ctx context.Context, st *store.Store, workspace string) ([]store.APIKeyInfo, error) {
	return st.ListAPIKeys(ctx, strings.TrimSpace(workspace))
}

// RevokeAPIKey revokes the key with this id on every server of the farm:
// each refuses it once its cached acceptance lapses, within httpapi's key
// cache TTL. revoked is false when the key had been revoked before, in
// which case it keeps its first revocation time. An id that names no key
// is a *farm.Error of KindNotFound.
func RevokeAPIKey(ctx context.Context, st *store.Store, id string) (key store.APIKeyInfo, revoked bool, err error) {
	id = strings.TrimSpace(id)
	if strings.HasPrefix(id, keyPrefix) {
		return key, false, farm.Invalid(farm.CodeInvalidRequest, "%q looks like a key, not a key's id; give the ID that `renderfarm keys list` shows", truncateForMessage(id, len(keyPrefix)+6))
	}
	key, revoked, err = st.RevokeAPIKey(ctx, id, time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return key, false, &farm.Error{Kind: farm.KindNotFound, Code: farm.CodeNotFound,
			Message: fmt.Sprintf("no API key has the id %q; `renderfarm keys list` shows the ids", truncateForMessage(id, 64))}
	}
	return key, revoked, err
}

// truncateForMessage keeps at most n bytes of s for an error message, so
// that a pasted secret or a very long argument is not repeated whole.
func truncateForMessage(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Authenticate finds the workspace of an API key. A key that is unknown,
// revoked or expired is refused with a 401 that says which; only someone
// holding the key can learn that it was revoked or expired, since the
// lookup is by the key's hash whatever the key.
//
// A key's last use is recorded here, in the wake of the lookup that reads
// it: only when the stored time is a minute old or more, so a key in
// steady use costs one write a minute, not one a request.
func (s *Service) Authenticate(ctx context.Context, apiKey string) (farm.Principal, error) {
	k, err := s.store.APIKeyByHash(ctx, hashKey(strings.TrimSpace(apiKey)))
	if errors.Is(err, store.ErrNotFound) {
		return farm.Principal{}, &farm.Error{Kind: farm.KindUnauthorized, Code: farm.CodeUnauthorized,
			Message: "the API key is not valid; create one with `renderfarm keys create --workspace NAME`"}
	}
	if err != nil {
		return farm.Principal{}, err
	}
	now := time.Now()
	if k.RevokedAt != nil {
		return farm.Principal{}, &farm.Error{Kind: farm.KindUnauthorized, Code: farm.CodeKeyRevoked,
			Message: fmt.Sprintf("the API key %s… was revoked at %s and no longer works; ask the farm's operator for a new key (`renderfarm keys create --workspace NAME`)",
				k.Prefix, k.RevokedAt.UTC().Format(time.RFC3339))}
	}
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return farm.Principal{}, &farm.Error{Kind: farm.KindUnauthorized, Code: farm.CodeKeyExpired,
			Message: fmt.Sprintf("the API key %s… expired at %s; ask the farm's operator for a new key (`renderfarm keys create --workspace NAME --expires 90d`)",
				k.Prefix, k.ExpiresAt.UTC().Format(time.RFC3339))}
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= lastUseResolution {
		// A failure to record the use must not refuse a valid key.
		if err := s.store.RecordAPIKeyUse(ctx, k.ID, now, now.Add(-lastUseResolution)); err != nil && ctx.Err() == nil {
			s.log.Warn("could not record an API key's last use", "key", k.ID, "err", err)
		}
	}
	p := farm.Principal{WorkspaceID: k.WorkspaceID, KeyID: k.ID}
	if k.ExpiresAt != nil {
		p.KeyExpiresAt = *k.ExpiresAt
	}
	return p, nil
}
