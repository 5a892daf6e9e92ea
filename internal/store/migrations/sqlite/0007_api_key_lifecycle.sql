-- API keys that can be named, listed, expired and revoked (renderfarm keys
-- create --name --expires, keys list, keys revoke). A key is refused from
-- its expires_at on and from its revoked_at on; NULL is never. last_used_at
-- is written at most once a minute per key, so a busy key costs no write
-- per request. Keys made before this migration have no name, no expiry,
-- and are in force.
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN expires_at DATETIME;
ALTER TABLE api_keys ADD COLUMN revoked_at DATETIME;
ALTER TABLE api_keys ADD COLUMN last_used_at DATETIME;
