#!/usr/bin/env bash
# One LLM Explorer replica: the command the container runs (Dockerfile CMD) and the command
# deploy/cluster.sh runs for each plain-process replica.
#   deploy/replica.sh PORT [ADDRESS]
# Reads LLM_EXPLORER_CACHE (the shared read-only cache built by deploy/prepare_cache.py),
# LLM_EXPLORER_THREADS (torch threads: the cores this replica may use) and STREAMLIT_* settings
# from the environment. STREAMLIT_BIN overrides which streamlit runs (default: the one on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
port="${1:?usage: deploy/replica.sh PORT [ADDRESS]}"
address="${2:-127.0.0.1}"
exec "${STREAMLIT_BIN:-streamlit}" run app.py \
  --server.port "$port" --server.address "$address" --server.headless true \
  --browser.gatherUsageStats false
