"""Test set-up shared by every test module.

* 8 virtual CPU devices, set before jax is imported anywhere, so sharding tests
  see a real mesh.
* `shared_dir`: the read-only reference material in ../shared (golden outputs,
  real annotation files); tests that need it skip with a message when absent.
* `import_timm()` / `import_laion_htsat()`: the PyTorch references, importable
  without torchvision and without laion-clap's hub-bound package import.
"""
import os
import pathlib

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
  if not SHARED.is_dir():
    pytest.skip(f"reference material not found at {SHARED}")
  return SHARED


@pytest.fixture(scope="session")
def golden_dir(shared_dir) -> pathlib.Path:
  path = shared_dir / "golden"
  if not path.is_dir():
    pytest.skip(f"golden fixtures not found at {path}")
  return path


@pytest.fixture(scope="session")
def annotations_dir(shared_dir) -> pathlib.Path:
  path = shared_dir / "annotations"
  if not path.is_dir():
    pytest.skip(f"annotation files not found at {path}")
  return path
