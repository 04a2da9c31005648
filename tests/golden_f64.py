"""A golden DG-SCT model (or head) in float64 (run in a subprocess with JAX_ENABLE_X64=1).

    python tests/golden_f64.py GOLDEN_DIR FIXTURE OUT.npz      # FIXTURE: a key of FIXTURES

The tests call `run_subprocess` (this script in a JAX_ENABLE_X64 process) and use
`convert` (a fixture's rule weights through the real arch conversion) in float32 too.

The reference's float64 outputs (`out64_*`, `pooled64_*` of <fixture>_io.npz) come
from `model.double()`: every weight and table of the float32 model widened, so
the STFT basis and mel matrix keep their float32 values, and PyTorch's float64
kernels compute the rest in double (bicubic taps included). The same here: the
converted float32 weights are widened, the front end uses torchlibrosa's DFT
basis (`stft="dft"`), and the model runs on float64 inputs. In float64 rounding
noise is ~1e-16 instead of ~1e-7, so this run isolates semantics from noise.
The computed tables (STFT, mel, indices, masks) of every full-model fixture are
AVE's: ave_full_computed_buffers.npz.
"""
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
from flax import nnx

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from golden_weights import golden_state_dict  # noqa: E402
import main_runs  # noqa: E402
from weight_conversion import archs  # noqa: E402
from weight_conversion import engine  # noqa: E402


AVVP_OUTPUTS = ("aud_cls_prob", "vis_cls_prob", "global_prob", "a_prob", "v_prob",
                "a_frame_prob", "v_frame_prob")
# fixture → (arch, model inputs from the io file, outputs kept)
FIXTURES = {
    "ave_full": ("dgsct_ave", lambda io: (io["input_audio_f16"], io["input_vis_f16"]),
                 ("is_event_scores", "event_scores", "audio_visual_gate", "av_score",
                  "pooled_visual", "pooled_audio")),
    "avvp_head": ("avvp_head",
                  lambda io: (io["input_vis_f16"], io["input_audio_f16"],
                              io["input_video_st_f16"]), AVVP_OUTPUTS),
    "avqa_head": ("avqa_head",
                  lambda io: tuple(x.reshape(2, 10, *x.shape[1:]) for x in (
                      io["input_posi_map_f16"], io["input_nega_map_f16"], io["input_audio_f16"]))
                  + (io["input_question"],), ("out_qa", "out_match_posi", "out_match_nega")),
}
AVS_OUTPUTS = ("pred", "pooled_audio") + tuple(f"a_fea_stage{i}" for i in range(1, 5))
for _subset in ("s4", "ms3"):
  FIXTURES[f"avs_{_subset}_full"] = (
      f"dgsct_avs_{_subset}", lambda io: (io["input_wave_f16"], io["input_imgs_f16"]),
      AVS_OUTPUTS)


def convert(golden_dir, fixture: str, arch_name: str, config=None, *, widen: bool = False):
  """The fixture's rule weights through the real conversion of `arch_name` (its
  `check_source` included) → (model, {'ignored': {key: reason}, 'mapping': {key: target}});
  `widen`: every floating weight and table of the model widened to float64 (on the host)."""
  golden_dir = pathlib.Path(golden_dir)
  state = golden_state_dict(golden_dir / f"{fixture}_manifest.json",
                            golden_dir / "ave_full_computed_buffers.npz")
  arch = archs.get(arch_name)
  config = arch.config if config is None else config
  if arch.check_source is not None:
    arch.check_source(state, config)
  abstract = archs.abstract_model(arch, config)
  result = engine.convert(state, abstract, arch.rules(list(state)),
                          what=f"golden {fixture} state dict")
  del state
  values = result.values
  if widen:
    values = {k: v.astype(np.float64) if np.issubdtype(v.dtype, np.floating) else v
              for k, v in values.items()}
  model = archs.materialize(arch, config, values, abstract=abstract)
  return model, {"ignored": dict(result.ignored),
                 "mapping": {source: target for source, target, _ in result.mapping}}


def run_subprocess(golden_dir, fixture: str, out_path, timeout: int = 900) -> dict:
  """This script on `fixture` in a JAX_ENABLE_X64 subprocess → its float64 outputs."""
  tests = pathlib.Path(__file__).resolve().parent
  env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu", XLA_FLAGS=main_runs.COMPILE_FLAGS,
             PYTHONPATH=os.pathsep.join([str(tests.parent), str(tests)]))
  proc = subprocess.run([sys.executable, str(tests / "golden_f64.py"), str(golden_dir), fixture,
                         str(out_path)], env=env, capture_output=True, text=True, timeout=timeout)
  if proc.returncode:
    signal = -proc.returncode
    killed = f" (killed by signal {signal}: out of memory?)" if signal > 0 else ""
    raise AssertionError(f"golden_f64.py {fixture} failed with status {proc.returncode}"
                         f"{killed}:\n{proc.stderr[-4000:]}")
  with np.load(out_path) as out:
    return dict(out)


def main(golden_dir, fixture, out_path):
  if not jax.config.jax_enable_x64:
    raise SystemExit("run with JAX_ENABLE_X64=1")
  golden_dir = pathlib.Path(golden_dir)
  arch_name, inputs, keys = FIXTURES[fixture]
  config = archs.get(arch_name).config
  if "htsat" in config:
    config = dict(config, htsat=dict(config["htsat"], stft="dft"))
  model, _ = convert(golden_dir, fixture, arch_name, config, widen=True)
  io = np.load(golden_dir / f"{fixture}_io.npz")
  args = [np.asarray(x).astype(np.float64) if np.issubdtype(np.asarray(x).dtype, np.floating)
          else np.asarray(x) for x in inputs(io)]
  out = nnx.jit(lambda m, *a: m(*a))(model, *args)
  np.savez(out_path, **{k: np.asarray(out[k]) for k in keys})


if __name__ == "__main__":
  main(*sys.argv[1:])
