#!/usr/bin/env bash
# The systemd unit and the Debian package (packaging/systemd/, packaging/debian/):
#   1. the unit: `systemd-analyze verify` prints nothing (it exits 0 on warnings, so any
#      printed line fails), `systemd-analyze security --offline` exposure at most 2.0;
#   2. the .deb built by cargo-deb: its conffiles, dependencies and maintainer scripts, and
#      lintian with no tag left but the justified overrides it ships;
#   3. dpkg -i: the system user, owners and modes, the enabled unit verified in place;
#   4. the installed binary run as that user with the installed ARGS against a loopback RFC 7662
#      peer: /metrics shows the token valid, the ledger lands in /var/lib/api-token-exporter,
#      SIGHUP (the unit's ExecReload) reloads;
#   5. dpkg --purge: binary, unit, conffiles and state gone; the system user stays (Debian
#      practice for daemons), and this check then removes it.
# It installs and purges the package on this machine, so it refuses to run where the package
# is already installed. Installs what it lacks by package name (Debian: systemd lintian
# help2man adduser binutils ca-certificates file openssl curl python3; crates.io: cargo-deb)
# and fails when a tool is still missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
started=$(date +%s)
step() { printf -- '--- deb.sh: %s\n' "$*"; }
fail() {
    echo "deb.sh: FAILED: $*" >&2
    exit 1
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
pkg=api-token-exporter
unit=/usr/lib/systemd/system/$pkg.service

step "tools"
need_apt=()
for tool in systemd-analyze:systemd lintian:lintian help2man:help2man adduser:adduser \
    strip:binutils file:file openssl:openssl curl:curl python3:python3 setpriv:util-linux; do
    command -v "${tool%%:*}" >/dev/null || need_apt+=("${tool#*:}")
done
[ -s /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
if [ ${#need_apt[@]} -gt 0 ]; then
    as_root apt-get update -qq
    mapfile -t need_apt < <(printf '%s\n' "${need_apt[@]}" | sort -u)
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
        "${need_apt[@]}" >/dev/null
fi
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install --locked --quiet cargo-deb
fi
for tool in systemd-analyze lintian help2man adduser strip file openssl curl python3 setpriv; do
    command -v "$tool" >/dev/null || fail "$tool is missing after installation"
done
cargo deb --version >/dev/null 2>&1 || fail "cargo-deb is missing after installation"

if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'installed'; then
    fail "$pkg is installed on this machine; this check installs and purges it, so it stops here"
fi
if getent passwd "$pkg" >/dev/null; then
    fail "a user $pkg exists without the package; this check must see postinst create it"
fi
for path in /etc/api-token-exporter /var/lib/api-token-exporter; do
    [ ! -e "$path" ] || fail "$path exists without the package; this check must see it made and removed"
done

work=$(mktemp -d)
chmod 0755 "$work"
installed=
exporter=
cleanup() {
    if [ -n "$exporter" ]; then kill "$exporter" 2>/dev/null || true; fi
    pk_stop_peer 2>/dev/null || true
    if [ -n "$installed" ]; then
        dpkg --purge "$pkg" >/dev/null 2>&1 || true
        deluser --quiet --system "$pkg" >/dev/null 2>&1 || true
        delgroup --quiet --system "$pkg" >/dev/null 2>&1 || true
        # Absent before the check (tested above): whatever a failed purge left is the check's.
        rm -rf /etc/api-token-exporter /var/lib/api-token-exporter
    fi
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

# verify_unit PATH [--root=DIR]: systemd-analyze verify must print nothing at all.
verify_unit() {
    local out
    out=$(systemd-analyze verify --man=no "${@:2}" "$1" 2>&1) || fail "systemd-analyze verify $1 exited non-zero: $out"
    [ -z "$out" ] || fail "systemd-analyze verify $1 printed: $out"
    # --threshold is on the 0-100 scale: 20 is an exposure of 2.0.
    out=$(systemd-analyze security --offline=true --threshold=20 "${@:2}" "$1" 2>&1) ||
        fail "systemd-analyze security: $(printf '%s\n' "$out" | grep -o 'Overall exposure level.*'), above 2.0; the exposed settings:
$(printf '%s\n' "$out" | grep '✗')"
    echo "deb.sh: $1: verify clean, $(printf '%s\n' "$out" | grep -o 'Overall exposure level.*' | sed 's/ [^ ]*$//')"
}

step "build the static binary and the .deb (packaging/debian/build.sh)"
deb=$(packaging/debian/build.sh)
echo "deb.sh: $deb ($(($(stat -c %s "$deb") / 1024)) KiB)"

step "unit file before packaging: systemd-analyze verify and security --offline"
# verify needs the unit's executables and systemd's own units under the root it checks.
vroot=$work/unit-root
mkdir -p "$vroot/usr/bin" "$vroot/bin" "$vroot/etc/systemd/system" "$vroot/lib/systemd"
cp -a /lib/systemd/system "$vroot/lib/systemd/"
cp /bin/kill "$vroot/bin/kill"
cp "$(packaging/build-static.sh)" "$vroot/usr/bin/$pkg"
cp packaging/systemd/$pkg.service "$vroot/etc/systemd/system/"
verify_unit /etc/systemd/system/$pkg.service --root="$vroot"

step "package metadata: conffiles, dependencies, maintainer scripts"
dpkg-deb -I "$deb" >"$work/info.txt"
dpkg-deb -e "$deb" "$work/control"
for conffile in /etc/api-token-exporter/config.yml /etc/default/api-token-exporter; do
    grep -qxF "$conffile" "$work/control/conffiles" || fail "$conffile is not a conffile"
done
grep -Eq '^ Depends: .*\badduser\b' "$work/info.txt" || fail "Depends lacks adduser: $(grep Depends "$work/info.txt")"
grep -q 'adduser --quiet --system' "$work/control/postinst" || fail "postinst does not create the user"
grep -q 'deb-systemd-helper' "$work/control/postinst" || fail "postinst does not enable the unit"

step "lintian"
# Every tag that is not overridden fails, informational ones included; each override in
# packaging/debian/lintian-overrides carries its reason.
status=0
lintian --display-info --fail-on error,warning,info --tag-display-limit 0 "$deb" >"$work/lintian.txt" 2>&1 ||
    status=$?
# Its remark about running as root is not a finding about the package.
lintian_out=$(grep -vx 'running with root privileges is not recommended!' "$work/lintian.txt" || true)
[ "$status" = 0 ] || fail "lintian exited $status: $lintian_out"
[ -z "$lintian_out" ] || fail "lintian printed: $lintian_out"
echo "deb.sh: lintian clean ($(grep -c '^[^#[:space:]]' packaging/debian/lintian-overrides) justified overrides)"

step "dpkg -i"
installed=1
dpkg -i "$deb" >"$work/dpkg-install.log" 2>&1 || fail "dpkg -i: $(cat "$work/dpkg-install.log")"
entry=$(getent passwd "$pkg") || fail "postinst did not create the user $pkg"
uid=$(echo "$entry" | cut -d: -f3)
[ "$uid" -lt 1000 ] || fail "$pkg is not a system user (uid $uid)"
case "$(echo "$entry" | cut -d: -f7)" in */nologin | */false) ;; *) fail "$pkg has a login shell: $entry" ;; esac
expect_mode() {
    local got
    got=$(stat -c '%a %U:%G' "$1") || fail "$1 is missing"
    [ "$got" = "$2" ] || fail "$1 is $got, expected $2"
}
expect_mode /etc/api-token-exporter "750 root:$pkg"
expect_mode /etc/api-token-exporter/config.yml "640 root:$pkg"
expect_mode /etc/default/$pkg "644 root:root"
expect_mode /var/lib/api-token-exporter "750 $pkg:$pkg"
expect_mode /usr/bin/$pkg "755 root:root"
[ -L /etc/systemd/system/multi-user.target.wants/$pkg.service ] || fail "the unit is not enabled"
verify_unit $unit
/usr/bin/$pkg --config.file=/etc/api-token-exporter/config.yml --config.check >/dev/null ||
    fail "the packaged config does not pass --config.check"

step "run the installed binary as $pkg with the installed ARGS against a loopback peer"
pk_make_pki "$work/pki"
secrets=$work/secrets
pk_make_secrets "$secrets"
chown -R root:$pkg "$secrets"
chmod 0750 "$secrets"
chmod 0640 "$secrets"/*
pk_start_peer "$work" "$work/pki" "$secrets"
# As an administrator would: the inventory goes into the packaged conffile.
pk_write_config /etc/api-token-exporter/config.yml "$PK_PEER_PORT" "$secrets"
# The system bundle plus the peer's CA, as a private CA would be given (SSL_CERT_FILE in a
# drop-in); the machine's own trust store stays untouched.
cat /etc/ssl/certs/ca-certificates.crt "$work/pki/ca.crt" >"$work/bundle.crt"
ARGS=
# shellcheck source=packaging/debian/default
. /etc/default/$pkg
port=$(pk_free_port)
# What the unit does, short of the namespaces only systemd as PID 1 can set up: its user and
# group, no capabilities, no new privileges, UMask=0077. ARGS splits on spaces as in the unit.
# shellcheck disable=SC2086
(umask 0077 && exec env -i PATH=/usr/bin:/bin SSL_CERT_FILE="$work/bundle.crt" \
    setpriv --reuid="$pkg" --regid="$pkg" --init-groups --no-new-privs --inh-caps=-all \
    --bounding-set=-all -- /usr/bin/$pkg $ARGS --web.listen-address="127.0.0.1:$port") \
    >"$work/exporter.log" 2>&1 &
exporter=$!
if ! pk_wait_valid "http://127.0.0.1:$port/metrics" 30; then
    tail -n 20 "$work/exporter.log" >&2
    fail "the installed exporter did not report the token valid"
fi
echo "deb.sh: /metrics shows packaging-check valid"
ledger=/var/lib/api-token-exporter/tokens.json
for _ in $(seq 1 40); do
    [ -s "$ledger" ] && break
    sleep 0.25
done
expect_mode "$ledger" "600 $pkg:$pkg"
# ExecReload: a token added to the file appears after SIGHUP.
cat >>/etc/api-token-exporter/config.yml <<YAML
  - name: packaging-reload
    provider: loopback-idp
    secret: {file: $secrets/token}
YAML
kill -HUP "$exporter"
for _ in $(seq 1 40); do
    grep -q 'config reloaded' "$work/exporter.log" && break
    sleep 0.25
done
grep -q 'config reloaded' "$work/exporter.log" || fail "SIGHUP did not reload the config"
curl -fsS "http://127.0.0.1:$port/metrics" >"$work/metrics.txt"
grep -q 'token="packaging-reload"' "$work/metrics.txt" || fail "the token added before SIGHUP is not exported"
grep -qx 'api_token_exporter_config_last_reload_successful 1' "$work/metrics.txt" ||
    fail "the reload after SIGHUP did not succeed"
echo "deb.sh: SIGHUP reloaded the config"
kill -TERM "$exporter"
wait "$exporter" || fail "the exporter exited with $? after SIGTERM"
exporter=
for secret in client-secret token; do
    if grep -qF "$(cat "$secrets/$secret")" "$work/exporter.log"; then
        fail "the log contains the $secret"
    fi
done

step "dpkg --purge"
dpkg --purge "$pkg" >"$work/dpkg-purge.log" 2>&1 || fail "dpkg --purge: $(cat "$work/dpkg-purge.log")"
for path in /usr/bin/$pkg $unit /etc/api-token-exporter /etc/default/$pkg /var/lib/api-token-exporter \
    /etc/systemd/system/multi-user.target.wants/$pkg.service; do
    if [ -e "$path" ] || [ -L "$path" ]; then fail "$path is left after purge"; fi
done
getent passwd "$pkg" >/dev/null || fail "purge removed the system user (Debian keeps it)"
deluser --quiet --system "$pkg" >/dev/null 2>&1
delgroup --quiet --system "$pkg" >/dev/null 2>&1 || true
installed=
echo "deb.sh: all checks passed in $(($(date +%s) - started))s"
