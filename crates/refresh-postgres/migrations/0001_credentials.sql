-- One row per credential. The tokens are AES-256-GCM ciphertext (nonce, then sealed JSON) under the key named by
-- key_id; expires_at and refreshable_until are kept in the clear for `refresh status` and operators.
-- A replica refreshes only while it holds the lease: lease_epoch is the fencing number (bumped at each take), and
-- lease_until is on this server's clock.
CREATE TABLE refresh_kit_credentials (
    id                text        PRIMARY KEY,
    version           bigint      NOT NULL DEFAULT 0,
    key_id            text,
    tokens            bytea,
    expires_at        timestamptz,
    refreshable_until timestamptz,
    lease_owner       text,
    lease_epoch       bigint      NOT NULL DEFAULT 0,
    lease_until       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Tokens a vendor issued whose fenced write was refused. Never deleted by refresh-kit.
CREATE TABLE refresh_kit_orphans (
    seq             bigserial   PRIMARY KEY,
    credential_id   text        NOT NULL REFERENCES refresh_kit_credentials (id),
    key_id          text        NOT NULL,
    tokens          bytea       NOT NULL,
    lost_to_version bigint      NOT NULL,
    kept_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_kit_orphans_credential ON refresh_kit_orphans (credential_id);
