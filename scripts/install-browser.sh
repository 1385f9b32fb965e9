#!/usr/bin/env bash
# Install the Chromium used by the browser tests (tests/browser).
#
# `playwright install` cannot download its own browser builds here, so we use
# the distribution's package (Debian: `chromium`) and point Playwright at it via
# executable_path. fonts-liberation (a Recommends we skip with
# --no-install-recommends) is installed so screenshots have real fonts.
# Idempotent: does nothing if `chromium` is already on PATH.
#
# Usage: scripts/install-browser.sh
set -euo pipefail

log() { printf 'install-browser: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if command -v chromium >/dev/null 2>&1; then
    log "chromium already installed: $(command -v chromium) ($(chromium --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 \
    || die "chromium is not on PATH and apt-get is unavailable; install Chromium manually so that 'chromium' is on PATH."

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 \
        || die "not root and sudo is unavailable; run as root: apt-get install chromium"
    SUDO=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
log "chromium not found; installing it with apt-get (this takes a minute or two)..."
"${SUDO[@]}" apt-get update -qq \
    || die "'apt-get update' failed (no network access to the package mirror?)."
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null \
    || die "'apt-get install chromium fonts-liberation' failed; see the apt output above."

command -v chromium >/dev/null 2>&1 \
    || die "apt-get finished but 'chromium' is still not on PATH."
log "installed: $(command -v chromium) ($(chromium --version 2>/dev/null || echo 'version unknown'))"
