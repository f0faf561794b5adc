#!/usr/bin/env bash
# Build the LiteLLM proxy's own virtualenv, outside the project's, for tests/integration/test_litellm_metrics.py.
# Usage: tests/integration/litellm_venv.sh [DIR]   (DIR defaults to $LLMDECK_LITELLM_VENV or <repo>/.litellm-venv)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DIR="${1:-${LLMDECK_LITELLM_VENV:-$ROOT/.litellm-venv}}"
PY=${PYTHON:-python3}
export LITELLM_LOCAL_MODEL_COST_MAP=True  # the import check must not fetch the price list
READY='import importlib.metadata as m, prometheus_client, fastapi, uvicorn, backoff; m.version("litellm")'
if [ -x "$DIR/bin/litellm" ] && "$DIR/bin/python" -c "$READY" 2>/dev/null; then
    echo "litellm venv ready: $DIR"
    exit 0
fi
if [ -d "$DIR" ] && [ ! -f "$DIR/pyvenv.cfg" ] && [ -n "$(ls -A "$DIR")" ]; then
    echo "refusing to replace $DIR: it is not empty and not a virtualenv" >&2
    exit 2
fi
rm -rf "$DIR"
"$PY" -m venv "$DIR"
"$DIR/bin/python" -m pip install --quiet --upgrade pip
"$DIR/bin/python" -m pip install --quiet 'litellm[proxy]' prometheus_client
"$DIR/bin/python" -c 'import litellm.proxy.proxy_server, prometheus_client'
echo "litellm venv ready: $DIR"
