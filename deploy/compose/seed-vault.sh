#!/bin/sh
# Seeds the compose stack's Vault dev server; run by the one-shot `seed` service with the
# vault image's CLI. Safe to run again: `docker compose run --rm seed` writes a new registry
# token (the next sweep rotates it into both AI Core tenants) and keeps the audit key.
#
#   VAULT_ADDR           the dev server
#   VAULT_TOKEN          its root token (only this script ever holds it)
#   ROTATOR_VAULT_TOKEN  the id of the token to create for the rotator (policy `rotator`)
#
# Values are generated here and handed to the CLI on standard input, never as arguments.
set -eu

: "${VAULT_ADDR:?set VAULT_ADDR}"
: "${VAULT_TOKEN:?set VAULT_TOKEN (the root token of the dev server)}"
: "${ROTATOR_VAULT_TOKEN:?set ROTATOR_VAULT_TOKEN (the token id the rotator is given)}"

# 32 random bytes as 64 hex digits.
random_hex() {
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

# The rotator reads two KV v2 paths and nothing else (lookup-self and renew-self of its
# own token come with Vault's default policy).
vault policy write rotator - >/dev/null <<'POLICY'
path "secret/data/registries/*" {
  capabilities = ["read"]
}
path "secret/data/rotator/*" {
  capabilities = ["read"]
}
POLICY

# The registry credential the rotator keeps in AI Core: a new token on every run.
random_hex | vault kv put -mount=secret registries/demo username=demo-robot password=- >/dev/null

# The audit HMAC key: written once. A new key would change every fingerprint.
if ! vault kv get -mount=secret rotator/audit >/dev/null 2>&1; then
  random_hex | vault kv put -mount=secret rotator/audit hmac_key=- >/dev/null
fi

# The rotator's token: periodic (it renews itself), an orphan (it outlives nothing),
# with a known id so that compose can hand it to the rotator.
if ! vault token lookup "$ROTATOR_VAULT_TOKEN" >/dev/null 2>&1; then
  vault token create -id="$ROTATOR_VAULT_TOKEN" -policy=rotator -period=24h -orphan \
    -display-name=rotator >/dev/null
fi

echo "seed: wrote secret/registries/demo, secret/rotator/audit and the rotator's token (policy rotator)"
