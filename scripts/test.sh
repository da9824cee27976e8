#!/usr/bin/env bash
# Install what the tests need, build lakewave with the lean `ci` profile, and run
# every test: Rust unit + integration tests (nextest, including the .slt files),
# the Python tests and doctests (including TPC-H against DuckDB and the
# notebooks), and the linters. Works on a fresh machine; reruns are warm because
# the Cargo target directory lives outside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lakewave/target}"
export LAKEWAVE_PROGRESS=0
PYTHON="${PYTHON:-python3}"
started=$(date +%s)
step() { echo; echo "==> $* ($(( $(date +%s) - started ))s)"; }

step "installing test dependencies"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
# The endpoints' tests drive the real `mariadb` client and HAProxy from Debian;
# the source's tests run a private MariaDB server from Debian.
if ! command -v mariadb >/dev/null || ! { command -v haproxy || test -x /usr/sbin/haproxy; } >/dev/null \
  || ! { command -v mariadbd || test -x /usr/sbin/mariadbd; } >/dev/null; then
  SUDO=""
  [ "$(id -u)" = "0" ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    mariadb-client-core mariadb-server-core haproxy >/dev/null
fi

step "formatting and Python lint"
cargo fmt --check
"$PYTHON" -m ruff check python tests benchmarks
"$PYTHON" -m ruff format --check python tests benchmarks

step "building the Python extension (profile ci)"
rm -rf dist
"$PYTHON" -m maturin build --profile ci --features python --out dist --quiet
"$PYTHON" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps dist/lakewave-*.whl

step "Rust unit, integration and SQL logic tests"
cargo nextest run --cargo-profile ci --no-fail-fast

if [ "${LAKEWAVE_CLIPPY:-1}" = "1" ]; then
  step "clippy"
  cargo clippy --profile ci --all-targets --features python -- -D warnings
fi

step "Python tests, doctests and notebooks"
"$PYTHON" -m pytest -q --doctest-modules --pyargs lakewave tests/python

step "all tests passed in $(( $(date +%s) - started ))s"
