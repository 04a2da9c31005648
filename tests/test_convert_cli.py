"""`python -m weight_conversion.convert` and `.run` on bad input: one line, exit status 1, no
traceback; NaN/Inf refused unless allowed; no orbax INFO logs; `~` in path flags.

The CLIs run in a subprocess of this file (see the end), which registers a toy arch: the
model and state dict of test_conversion_engine.py.
"""
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import test_conversion_engine as toy
from weight_conversion import archs
from weight_conversion import sources

REPO = pathlib.Path(__file__).resolve().parents[1]
LOG_LINE = re.compile(r"^[IWE]\d{4} ", re.M)  # an absl log line, e.g. 'I1126 13:16:26.1 ...'


def toy_arch() -> archs.Arch:
  return archs.Arch(
      name="toy", description="the toy model of test_conversion_engine.py",
      build=lambda features: toy.Toy(), config={"features": 4}, rules=lambda keys: toy.RULES,
      run=lambda model, inputs: {"y": np.asarray(model.proj(inputs["x"]))})


def cli(tool: str, *args, home=None) -> subprocess.CompletedProcess:
  """`tool` (convert or run) with the toy arch registered, from `home` as $HOME."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  if home is not None:
    env["HOME"] = str(home)
  return subprocess.run([sys.executable, __file__, tool, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300, check=False)


def assert_fails_with(done: subprocess.CompletedProcess, pattern: str):
  """Exit status 1 and exactly one stderr line, matching `pattern`."""
  assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
  lines = done.stderr.strip().splitlines()
  assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
  assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  """A toy source, its converted directory and a good inputs file."""
  tmp = tmp_path_factory.mktemp("toy")
  np.savez(tmp / "toy.npz", **toy.torch_style_state())
  np.savez(tmp / "in.npz", x=np.ones((2, 3), np.float32))
  done = cli("convert", "--arch=toy", f"--src={tmp / 'toy.npz'}", f"--out={tmp / 'w'}")
  assert done.returncode == 0, done.stderr
  return tmp


def _truncated_torch_file(path):
  torch = pytest.importorskip("torch")
  torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in toy.torch_style_state().items()},
             path)
  path.write_bytes(path.read_bytes()[:1000])


def _truncated_safetensors_file(path):
  from safetensors.numpy import save_file
  save_file(toy.torch_style_state(), str(path))
  path.write_bytes(path.read_bytes()[:100])


BAD_SOURCES = {
    "empty.pth": (lambda p: p.write_bytes(b""), r"empty\.pth: empty file \(0 bytes\)"),
    "truncated.pth": (_truncated_torch_file,
                      r"truncated\.pth: refused or unreadable with torch\.load\(weights_only="
                      r"True\) .*: RuntimeError: PytorchStreamReader failed reading zip archive"),
    "text.pth": (lambda p: p.write_text("hello\n"),
                 r"text\.pth: refused or unreadable with torch\.load\(weights_only=True\) .*\): "
                 r"KeyError: "),
    "corrupt.npz": (lambda p: p.write_bytes(b"PK\x03\x04 damaged"),
                    r"corrupt\.npz: not a readable \.npz of arrays \(BadZipFile: "),
    "text.npz": (lambda p: p.write_text("hello\n"),
                 r"text\.npz: not a readable \.npz of arrays \(ValueError: not a zip archive\)"),
    "object.npz": (lambda p: np.savez(p, a=np.array([{}], dtype=object)),
                   r"object\.npz: .*Object arrays cannot be loaded when allow_pickle=False"),
    "corrupt.safetensors": (_truncated_safetensors_file,
                            r"corrupt\.safetensors: not a readable \.safetensors file "
                            r"\(SafetensorError: "),
    "missing.npz": (lambda p: None, r"missing\.npz: no such file"),
}


@pytest.mark.parametrize("name", BAD_SOURCES)
def test_bad_source_files_are_one_line_errors(name, tmp_path):
  write, message = BAD_SOURCES[name]
  write(tmp_path / name)
  with pytest.raises(sources.SourceError, match=message):
    sources.load_state_dict(tmp_path / name)


@pytest.mark.parametrize("name", ["empty.pth", "truncated.pth", "corrupt.npz",
                                  "corrupt.safetensors"])
def test_convert_cli_refuses_bad_sources(name, tmp_path):
  write, message = BAD_SOURCES[name]
  write(tmp_path / name)
  done = cli("convert", "--arch=toy", f"--src={tmp_path / name}", f"--out={tmp_path / 'w'}")
  assert_fails_with(done, r"^conversion failed: .*" + message)
  assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("model_config, message", [
    ("{features: 4}", r"--model_config is not valid JSON \(Expecting property name"),
    ('{"featurs": 4}', r"--model_config: arch 'toy' has no key\(s\) \['featurs'\]; its keys: "
                       r"\['features'\]"),
    ("[4]", r"--model_config must be a JSON object, got \[4\]"),
])
def test_convert_cli_refuses_bad_model_config(converted, tmp_path, model_config, message):
  done = cli("convert", "--arch=toy", f"--src={converted / 'toy.npz'}",
             f"--out={tmp_path / 'w'}", f"--model_config={model_config}")
  assert_fails_with(done, r"^conversion failed: " + message)


def test_nonfinite_sources_need_allow_nonfinite(tmp_path):
  state = toy.torch_style_state()
  state["proj.weight"][1, 2] = np.nan
  state["bn.running_var"][0] = -np.inf
  np.savez(tmp_path / "nan.npz", **state)
  args = ("--arch=toy", f"--src={tmp_path / 'nan.npz'}", f"--out={tmp_path / 'w'}")
  assert_fails_with(cli("convert", *args),
                    r"nan\.npz: NaN/Inf in 2 source key\(s\): proj\.weight \(1 NaN, 0 Inf\), "
                    r"bn\.running_var \(0 NaN, 1 Inf\); pass --allow_nonfinite")
  assert not (tmp_path / "w").exists()
  done = cli("convert", *args, "--allow_nonfinite")
  assert done.returncode == 0, done.stderr
  assert "with NaN/Inf (--allow_nonfinite): proj.weight (1 NaN, 0 Inf)" in done.stdout
  manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
  assert manifest["nonfinite"] == {"proj.weight": {"nan": 1, "inf": 0},
                                   "bn.running_var": {"nan": 0, "inf": 1}}


def test_run_cli_refuses_bad_inputs(converted, tmp_path):
  run = lambda inputs: cli("run", f"--params={converted / 'w'}", f"--inputs={inputs}",
                           f"--outputs={tmp_path / 'out.npz'}")
  assert_fails_with(run(tmp_path / "absent.npz"), r"^run failed: .*absent\.npz: no such file$")
  (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 damaged")
  assert_fails_with(run(tmp_path / "bad.npz"), r"^run failed: .*bad\.npz: not a readable \.npz")
  assert_fails_with(run(tmp_path), r"^run failed: .*: not a file$")
  np.savez(tmp_path / "empty.npz", x=np.zeros((0, 3), np.float32))
  assert_fails_with(run(tmp_path / "empty.npz"),
                    r"^run failed: empty batch: inputs \['x'\] hold 0 examples$")
  assert not (tmp_path / "out.npz").exists()


def test_run_cli_names_nonfinite_outputs(converted, tmp_path):
  np.savez(tmp_path / "nan.npz", x=np.array([[1, np.nan, 0], [0, 0, 0]], np.float32))
  done = cli("run", f"--params={converted / 'w'}", f"--inputs={tmp_path / 'nan.npz'}",
             f"--outputs={tmp_path / 'out.npz'}")
  assert_fails_with(done, r"^run failed: NaN/Inf in outputs y \(4 NaN, 0 Inf\) \(written to ")


def test_no_orbax_logs_unless_verbosity_and_tilde_paths(converted, tmp_path):
  """Both CLIs with every path flag under ~ ($HOME = tmp_path); orbax logs only with -v."""
  np.savez(tmp_path / "toy.npz", **toy.torch_style_state())
  np.savez(tmp_path / "in.npz", x=np.ones((2, 3), np.float32))
  done = cli("convert", "--arch=toy", "--src=~/toy.npz", "--out=~/w", home=tmp_path)
  assert done.returncode == 0 and not LOG_LINE.search(done.stderr), done.stderr[-2000:]
  assert (tmp_path / "w" / "manifest.json").is_file()
  assert json.loads((tmp_path / "w" / "manifest.json").read_text())["nonfinite"] == {}
  done = cli("run", "--params=~/w", "--inputs=~/in.npz", "--outputs=~/out.npz", home=tmp_path)
  assert done.returncode == 0 and not LOG_LINE.search(done.stderr), done.stderr[-2000:]
  assert (tmp_path / "out.npz").is_file() and "y " in done.stdout
  done = cli("run", "--params=~/w", "--inputs=~/in.npz", "--outputs=~/out.npz", "--verbosity=0",
             home=tmp_path)
  assert done.returncode == 0 and LOG_LINE.search(done.stderr), done.stderr[-2000:]


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  from weight_conversion import convert, run  # pylint: disable=g-import-not-at-top
  archs.all_archs = lambda: {"toy": toy_arch()}
  tool = {"convert": convert, "run": run}[sys.argv.pop(1)]
  tool.define_flags()
  app.run(lambda argv: sys.exit(tool.main(argv)))
