# Shared by .ci/checks/image.sh and .ci/checks/deb.sh (sourced, not run): a throw-away CA,
# fake secrets, the loopback introspection peer, and the wait for a `valid` verdict.
# Callers set `set -euo pipefail` and a cleanup trap that calls pk_stop_peer.
# shellcheck shell=bash disable=SC2034 # PK_PEER_PID and PK_PEER_PORT are for the caller.

# pk_make_pki DIR: a CA and a server certificate for localhost and 127.0.0.1 signed by it.
pk_make_pki() {
    local dir=$1
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=api-token-exporter packaging check CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1' 'basicConstraints=CA:FALSE' \
        'extendedKeyUsage=serverAuth' >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
}

# pk_make_secrets DIR: fake client credentials and a fake token, random per run, written
# without a trailing newline. Never printed.
pk_make_secrets() {
    local dir=$1
    mkdir -p "$dir"
    printf 'packaging-check' >"$dir/client-id"
    printf '%s' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$dir/client-secret"
    printf 'fake-%s' "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" >"$dir/token"
}

# pk_write_config FILE PEER_PORT SECRET_DIR: the inventory the packaged exporter runs on, with
# the secret paths as the exporter sees them (SECRET_DIR may be a path inside a container).
pk_write_config() {
    local file=$1 port=$2 secrets=$3
    cat >"$file" <<YAML
# Written by packaging/test/lib.sh for a packaging check.
providers:
  loopback-idp:
    kind: oauth2_introspection
    # A host name, not an address: resolving it proves the resolver works where the
    # exporter runs (for the image: a static glibc in a scratch container).
    introspection_endpoint: https://localhost:$port/introspect
    client_id: packaging-check
    client_secret: {file: $secrets/client-secret}
    auth_method: client_secret_basic
tokens:
  - name: packaging-check
    provider: loopback-idp
    secret: {file: $secrets/token}
YAML
}

# pk_free_port: a TCP port on 127.0.0.1 that was free a moment ago.
pk_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# pk_start_peer WORK PKI_DIR SECRET_DIR: starts the peer, sets PK_PEER_PID and PK_PEER_PORT.
pk_start_peer() {
    local work=$1 pki=$2 secrets=$3 script
    script="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/introspection-peer.py"
    rm -f "$work/peer.port"
    python3 "$script" --cert "$pki/server.crt" --key "$pki/server.key" --secrets "$secrets" \
        --port-file "$work/peer.port" 2>"$work/peer.log" &
    PK_PEER_PID=$!
    for _ in $(seq 1 50); do
        [ -s "$work/peer.port" ] && break
        kill -0 "$PK_PEER_PID" 2>/dev/null || { cat "$work/peer.log" >&2; return 1; }
        sleep 0.1
    done
    PK_PEER_PORT=$(cat "$work/peer.port")
}

pk_stop_peer() {
    if [ -n "${PK_PEER_PID:-}" ]; then
        kill "$PK_PEER_PID" 2>/dev/null || true
        wait "$PK_PEER_PID" 2>/dev/null || true
        PK_PEER_PID=
    fi
}

# pk_wait_valid METRICS_URL SECONDS: waits until /metrics says the token is valid. On a
# timeout prints the token's state series and fails.
pk_wait_valid() {
    local url=$1 seconds=$2
    for _ in $(seq 1 $((seconds * 4))); do
        if curl -fsS --max-time 2 "$url" 2>/dev/null |
            grep -Eq '^api_token_state\{[^}]*token="packaging-check"[^}]*state="valid"[^}]*\} 1$'; then
            return 0
        fi
        sleep 0.25
    done
    echo "no valid verdict for packaging-check at $url after ${seconds}s; its state series:" >&2
    curl -fsS --max-time 2 "$url" 2>&1 | grep -E 'api_token_state\{|probe_failures_total\{' | grep -v ' 0$' >&2 || true
    return 1
}
