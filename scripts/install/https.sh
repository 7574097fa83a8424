#!/usr/bin/env bash
# The HTTPS web tests' clients (cli/tests/daemon/web_https.rs): curl (7.88 or newer, for
# its %{certs} output) and python3 with its ssl module, from apt. Idempotent and quiet.
set -euo pipefail
if ! command -v curl >/dev/null || ! command -v python3 >/dev/null \
  || ! python3 -c 'import ssl' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends curl python3 ca-certificates >/dev/null
fi
