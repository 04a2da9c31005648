"""The whole golden AVE model in float64 (run in a subprocess with JAX_ENABLE_X64=1).

    python tests/golden_f64.py GOLDEN_DIR OUT.npz

The reference's float64 outputs (`out64_*`, `pooled64_*` of ave_full_io.npz) come
from `model.double()`: every weight and table of the float32 model widened, so
the STFT basis and mel matrix keep their float32 values, and PyTorch's float64
kernels compute the rest in double (bicubic taps included). The same here: the
converted float32 weights are widened, the front end uses torchlibrosa's DFT
basis (`stft="dft"`), and the model runs on float64 inputs. In float64 rounding
noise is ~1e-16 instead of ~1e-7, so this run isolates semantics from noise.
"""
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from golden_weights import golden_state_dict  # noqa: E402
from weight_conversion import archs  # noqa: E402
from weight_conversion import engine  # noqa: E402


def widen(model):
  state = jax.tree.map(
      lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x,
      nnx.state(model))
  nnx.update(model, state)


def main(golden_dir, out_path):
  if not jax.config.jax_enable_x64:
    raise SystemExit("run with JAX_ENABLE_X64=1")
  golden_dir = pathlib.Path(golden_dir)
  state = golden_state_dict(golden_dir / "ave_full_manifest.json",
                            golden_dir / "ave_full_computed_buffers.npz")
  arch = archs.get("dgsct_ave")
  config = dict(arch.config, htsat=dict(arch.config["htsat"], stft="dft"))
  arch.check_source(state, config)
  result = engine.convert(state, archs.abstract_model(arch, config), arch.rules(list(state)),
                          what="golden ave_full state dict")
  del state
  model = archs.materialize(arch, config, result.values)
  del result
  widen(model)
  io = np.load(golden_dir / "ave_full_io.npz")
  audio = io["input_audio_f16"].astype(np.float64)
  frames = io["input_vis_f16"].astype(np.float64)
  out = nnx.jit(lambda m, a, f: m(a, f))(model, audio, frames)
  keys = ("is_event_scores", "event_scores", "audio_visual_gate", "av_score",
          "pooled_visual", "pooled_audio")
  np.savez(out_path, **{k: np.asarray(out[k]) for k in keys})


if __name__ == "__main__":
  main(*sys.argv[1:])
