#!/usr/bin/env bash
# Run on every TPU VM worker (launch/tpu_pod.py --setup does it): a venv with the
# pinned JAX for TPU and this package. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[tpu]' -f https://storage.googleapis.com/jax-releases/libtpu_releases.html
.venv/bin/python -c "import jax; print(jax.process_index(), jax.local_device_count(), jax.devices()[0].platform)"
