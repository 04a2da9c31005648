"""Import helpers for the PyTorch reference implementations used in parity tests.

timm imports torchvision, and no torchvision works beside the CPU torch wheel
pinned in setup.py, so we give timm a stand-in whose attributes are inert
placeholders (the Swin-V2 code path never touches them). laion-clap's package
`__init__` imports its text model from a hub; we load `clap_module.htsat` with a
bare package shell instead.
"""
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import pathlib
import sys
import types

import pytest


class _PlaceholderMeta(type):

  def __getattr__(cls, name):  # InterpolationMode.NEAREST and the like: distinct members
    if name.startswith("__"):
      raise AttributeError(name)
    member = _PlaceholderMeta(name, (cls,), {})
    setattr(cls, name, member)
    return member


class _Placeholder(metaclass=_PlaceholderMeta):
  """Stands in for any torchvision class, enum or function; fails only when called."""

  def __init__(self, *args, **kwargs):
    raise RuntimeError("torchvision stand-in: this object is not available in tests")

  def __class_getitem__(cls, item):
    return cls


class _StubModule(types.ModuleType):

  def __getattr__(self, name):
    if name.startswith("__"):
      raise AttributeError(name)
    placeholder = _PlaceholderMeta(name, (_Placeholder,), {})
    setattr(self, name, placeholder)
    return placeholder


class _TorchvisionFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):

  def find_spec(self, fullname, path, target=None):
    if fullname == "torchvision" or fullname.startswith("torchvision."):
      return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
    return None

  def create_module(self, spec):
    module = _StubModule(spec.name)
    module.__path__ = []
    module.__version__ = "0.0.0+stub"
    return module

  def exec_module(self, module):
    pass


def install_torchvision_stub():
  try:
    import torchvision  # noqa: F401  (a real, working one wins)
    return
  except Exception:  # pylint: disable=broad-except
    pass
  for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
    del sys.modules[name]
  if not any(isinstance(f, _TorchvisionFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _TorchvisionFinder())


def import_torch():
  return pytest.importorskip("torch")


def import_timm():
  import_torch()
  install_torchvision_stub()
  return pytest.importorskip("timm")


def import_laion_htsat():
  """Returns laion_clap.clap_module.htsat without running the package imports."""
  import_torch()
  install_torchvision_stub()  # laion_clap.clap_module.utils imports torchvision
  if "laion_clap.clap_module.htsat" in sys.modules:
    return sys.modules["laion_clap.clap_module.htsat"]
  spec = importlib.util.find_spec("laion_clap")
  if spec is None or not spec.submodule_search_locations:
    pytest.skip("laion-clap is not installed")
  root = pathlib.Path(list(spec.submodule_search_locations)[0])
  for name, path in (("laion_clap", root), ("laion_clap.clap_module", root / "clap_module")):
    if name not in sys.modules:
      shell = types.ModuleType(name)
      shell.__path__ = [str(path)]
      sys.modules[name] = shell
  return importlib.import_module("laion_clap.clap_module.htsat")
