#!/usr/bin/env bash
# Runs SpawnIt's whole test suite on real parts, installing first what the tests need:
# Debian packages (static busybox, Redis and Caddy binaries for the locally built test images, the Redis
# client, Chromium and its WebDriver for the browser tests), moto_server (a real S3 and EC2 API on
# loopback), schemathesis and oidc-provider-mock (a real OpenID provider on loopback) from PyPI,
# and the test images themselves.
# Idempotent: a second run installs nothing. Needs a running Docker engine: without one the
# Docker tests fail, they are never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

apt_packages=(busybox-static redis-server redis-tools caddy chromium chromium-driver)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

pip_packages=()
command -v moto_server >/dev/null 2>&1 || pip_packages+=('moto[server]>=5,<6')
command -v schemathesis >/dev/null 2>&1 || pip_packages+=('schemathesis>=4.30,<5')
command -v oidc-provider-mock >/dev/null 2>&1 || pip_packages+=('oidc-provider-mock>=0.3,<0.4')
if ((${#pip_packages[@]})); then
  log "installing from PyPI: ${pip_packages[*]}"
  python3 -m pip install --quiet "${pip_packages[@]}"
fi

if ! docker info >/dev/null 2>&1; then
  echo "error: no Docker engine answers 'docker info': the Docker tests need one (they fail, never skip)" >&2
fi

log "building the local test images"
scripts/test-images.sh

log "cargo test"
# Most tests wait on Docker, a Swarm or a server rather than compute: four at a time per test
# binary keeps the two cores busy (the CI machine's count) without starving any of them.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$results"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo ends on its last crate's doc-tests otherwise).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "\ntests: %d passed, %d failed\n", passed, failed }' "$results"
exit "$status"
