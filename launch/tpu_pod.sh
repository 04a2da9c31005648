#!/usr/bin/env bash
# Shell entry for launch/tpu_pod.py (same arguments), e.g.
#   launch/tpu_pod.sh --tpu=my-v4-32 --zone=us-central2-b --dry_run -- -m dgsct_jax.main --config=...
exec python3 "$(dirname "$0")/tpu_pod.py" "$@"
