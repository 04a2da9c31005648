"""HTS-AT's log-mel front end in pure JAX (spec §1.2), computed on the accelerator.

The official HTS-AT runs torchlibrosa on the GPU inside the model:

  wave (B, samples)
    → STFT: periodic Hann, n_fft = win = 1024, hop 320, center, reflect pad   (B, 1001, 513) power
    → Slaney mel filter bank (64 bins, 50–14000 Hz) and 10·log10(max(·, 1e-10))  (B, 1001, 64)
    → bn0: BatchNorm over the 64 mel bins
    → SpecAugment (training only): 2 time stripes < 64 frames, 2 mel stripes < 8 bins
    → reshape_wav2img: bicubic (align_corners=True) time resize 1001 → 1024, then
      fold the 4 chunks of 256 frames on top of each other           (B, 256, 256, 1)

Every stage is a method so that tests and `weight_conversion.run` can output
intermediates; `__call__` chains them. Layouts are channels-last: stages are
(B, frames, bins) where PyTorch has (B, 1, frames, bins), and the image is
NHWC (B, 256, 256, 1) where PyTorch has NCHW (B, 1, 256, 256). Image row =
chunk·64 + mel bin, column = frame within the 256-frame chunk.

Train vs eval. DG-SCT calls `model.train()` on the frozen HTS-AT, so the
reference front end normalises with *batch* statistics, updates bn0's running
statistics and applies SpecAugment (spec §8.3). `__call__` follows
`deterministic` by default (deterministic=False reproduces the reference) and
lets the caller pick bn0 statistics and SpecAugment independently, e.g. a
"clean" run with running statistics and no SpecAugment while drop path is on.

Numerics. The STFT defaults to `jnp.fft.rfft` of Hann-windowed frames. The
reference computes it as a float32 Conv1d with a DFT basis; against a float64
STFT the FFT is ~3× closer than that conv, and both agree with the golden
log-mel to ~5e-7 relative (max|Δ| / max|ref|), far inside the 1e-5 budget.
`stft="dft"` selects a matmul with torchlibrosa's own basis (bit-identical to
the checkpoint's `conv_real/conv_imag` weights) for backends with a weak FFT.
All matmuls run at `Precision.HIGHEST` (TF32 would cost ~1e-3 relative).

Constants (window, mel matrix, DFT basis, resize matrix) are numpy arrays
computed at construction and kept out of `nnx.state` (they are neither
trained, nor converted, nor checkpointed); under `jit` they become compile-time
constants.

Bad input. Shapes and dtypes are checked in Python before tracing (ValueError
naming the problem). Non-finite values can only be seen eagerly: when the
waveform is concrete (not a tracer) and `check_finite=True`, a NaN/Inf raises
ValueError with the example index; under `jit` it propagates silently (and in
train mode bn0's batch statistics spread it to the whole batch and into the
running statistics). Data pipelines should therefore call `validate_waveform`
on the host; `nonfinite_examples` is the jittable per-example flag for a
trainer that wants to skip or log such batches.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dgsct_jax.models import resize
from dgsct_jax.models import layers
from dgsct_jax.models.layers import BatchNorm

HIGHEST = jax.lax.Precision.HIGHEST


# ----------------------------------------------------------------------------
# Host-side constants (numpy, float64 maths, cast once to float32)
# ----------------------------------------------------------------------------


def hann_window(n: int) -> np.ndarray:
  """Periodic Hann window, computed as scipy.signal.get_window('hann', n, fftbins=True).

  scipy evaluates 0.5 + 0.5·cos(φ) on φ = linspace(-π, π, n + 1)[:-1]; doing the
  same keeps the float64 window bit-identical to the one torchlibrosa used.
  """
  phase = np.linspace(-np.pi, np.pi, n + 1)[:-1]
  return 0.5 + 0.5 * np.cos(phase)


def hz_to_mel_slaney(hz):
  """Slaney's auditory-toolbox mel scale (librosa's default, htk=False)."""
  hz = np.asarray(hz, np.float64)
  f_sp = 200.0 / 3
  min_log_hz = 1000.0
  min_log_mel = min_log_hz / f_sp
  logstep = np.log(6.4) / 27.0
  return np.where(hz >= min_log_hz,
                  min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep,
                  hz / f_sp)


def mel_to_hz_slaney(mel):
  mel = np.asarray(mel, np.float64)
  f_sp = 200.0 / 3
  min_log_hz = 1000.0
  min_log_mel = min_log_hz / f_sp
  logstep = np.log(6.4) / 27.0
  return np.where(mel >= min_log_mel,
                  min_log_hz * np.exp(logstep * (np.maximum(mel, min_log_mel) - min_log_mel)),
                  f_sp * mel)


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float,
                          fmax: float) -> np.ndarray:
  """(n_mels, n_fft // 2 + 1) float32 = librosa.filters.mel(norm='slaney', htk=False).

  Triangles on mel-spaced centres, intersected with zero, each scaled by
  2 / (right edge − left edge) in Hz ("constant energy per channel"). Like
  librosa, the triangles are stored in float32 first and then scaled in place,
  so the result matches librosa to the last bit. librosa is not a runtime
  dependency; tests check the equality.
  """
  n_freq = n_fft // 2 + 1
  fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
  mel_edges = mel_to_hz_slaney(np.linspace(hz_to_mel_slaney(fmin), hz_to_mel_slaney(fmax),
                                           n_mels + 2))
  fdiff = np.diff(mel_edges)
  ramps = np.subtract.outer(mel_edges, fft_freqs)
  weights = np.zeros((n_mels, n_freq), np.float32)
  for i in range(n_mels):
    lower = -ramps[i] / fdiff[i]
    upper = ramps[i + 2] / fdiff[i + 1]
    weights[i] = np.maximum(0, np.minimum(lower, upper))
  enorm = 2.0 / (mel_edges[2:n_mels + 2] - mel_edges[:n_mels])
  weights *= enorm[:, None]
  if np.any(weights.max(axis=1) <= 0):
    raise ValueError(f"empty mel filters for sr={sample_rate}, n_fft={n_fft}, n_mels={n_mels}, "
                     f"fmin={fmin}, fmax={fmax}: use fewer mel bins or a larger n_fft")
  return weights


def torchlibrosa_dft_basis(n_fft: int, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(n_fft, n_fft // 2 + 1) real and imaginary windowed DFT bases, float32.

  Built the way torchlibrosa builds its Conv1d weights (complex powers of
  ω = e^{-2πi/n}), so the values equal the checkpoint's `conv_real/conv_imag`.
  """
  n_freq = n_fft // 2 + 1
  x, y = np.meshgrid(np.arange(n_fft), np.arange(n_freq), indexing="ij")
  w = np.power(np.exp(-2j * np.pi / n_fft), x * y) * window[:, None]
  return np.real(w).astype(np.float32), np.imag(w).astype(np.float32)


class _Constants:
  """Read-only numpy tables, hashed by the configuration that produced them.

  Being hashable (and not an array) makes NNX treat the holder as static graph
  data, so the tables stay out of `nnx.state` and become jit constants.
  """

  def __init__(self, key: tuple, **arrays):
    self._key = key
    for name, value in arrays.items():
      value = np.asarray(value)
      value.setflags(write=False)
      setattr(self, name, value)

  def __hash__(self):
    return hash(self._key)

  def __eq__(self, other):
    return isinstance(other, _Constants) and other._key == self._key  # pylint: disable=protected-access

  def __repr__(self):
    return f"_Constants{self._key}"


# ----------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------


def _check_shape_dtype(shape, dtype, *, num_samples: int | None, min_samples: int):
  if len(shape) != 2:
    hint = (" (flatten (B, T, samples) to (B*T, samples) first)" if len(shape) == 3 else "")
    raise ValueError(f"waveform must have rank 2 (batch, samples), got shape {tuple(shape)}{hint}")
  if shape[0] == 0:
    raise ValueError("waveform batch is empty")
  if num_samples is not None and shape[1] != num_samples:
    raise ValueError(f"waveform has {shape[1]} samples per example, expected {num_samples} "
                     f"(shape {tuple(shape)})")
  if shape[1] < min_samples:
    raise ValueError(f"waveform has {shape[1]} samples, need at least {min_samples} "
                     "(reflect padding by n_fft // 2)")
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"waveform must be floating point in [-1, 1], got dtype {dtype} "
                     "(convert PCM integers by dividing by their full scale first)")


def _check_finite_host(wave: np.ndarray):
  finite = np.isfinite(wave)
  if not finite.all():
    bad_rows = np.flatnonzero(~finite.all(axis=1))
    first = int(bad_rows[0])
    col = int(np.flatnonzero(~finite[first])[0])
    kind = "NaN" if np.isnan(wave[first, col]) else "Inf"
    raise ValueError(f"waveform example {first} contains {kind} at sample {col} "
                     f"({int((~finite).sum())} non-finite values in examples "
                     f"{bad_rows[:10].tolist()}{'...' if len(bad_rows) > 10 else ''})")


def validate_waveform(wave, *, num_samples: int | None = 320000,
                      min_samples: int = 513) -> np.ndarray:
  """Host-side check for the data path / CLI; returns the waveform as float32.

  Raises ValueError naming the problem (rank, sample count, dtype) and, for
  NaN/Inf, the first offending example index and sample.
  """
  wave = np.asarray(wave)
  _check_shape_dtype(wave.shape, wave.dtype, num_samples=num_samples, min_samples=min_samples)
  wave = wave.astype(np.float32)
  _check_finite_host(wave)
  return wave


def nonfinite_examples(wave) -> jax.Array:
  """(B,) bool, True where an example holds NaN or Inf. Jittable."""
  return ~jnp.all(jnp.isfinite(wave), axis=-1)


# ----------------------------------------------------------------------------
# The module
# ----------------------------------------------------------------------------


class LogMelFrontend(nnx.Module):
  """waveform (B, samples) → HTS-AT input image (B, spec_size, spec_size, 1), NHWC.

  Stages (all channels-last; float32, or float64 for float64 waveforms under
  jax_enable_x64, where the tables keep the float32 values the reference's
  `.double()` model holds and the resize uses PyTorch's double taps):
    spectrogram(wave)     (B, frames, n_fft//2+1)  power |STFT|²
    logmel(wave)          (B, frames, mel_bins)     dB, before bn0
    normalize(x, batch_stats=...)                   bn0
    spec_augment(x, rngs)                           stripes zeroed
    resize_time(x)        (B, spec_size·freq_ratio, spec_size // freq_ratio)
    fold(x)               (B, spec_size, spec_size, 1)
    to_image(x) = fold(resize_time(x))
  with frames = 1 + samples // hop and freq_ratio = spec_size // mel_bins
  (4 for HTS-AT: 1024 frames × 64 bins folded into 256 × 256).
  """

  def __init__(self, *, sample_rate: int = 32000, n_fft: int = 1024, hop: int = 320,
               mel_bins: int = 64, fmin: float = 50.0, fmax: float = 14000.0,
               amin: float = 1e-10, ref: float = 1.0, spec_size: int = 256,
               num_samples: int | None = 320000,
               time_drop_width: int = 64, time_stripes_num: int = 2,
               freq_drop_width: int = 8, freq_stripes_num: int = 2,
               stft: str = "fft", check_finite: bool = True,
               bn_momentum: float = 0.1, bn_eps: float = 1e-5,
               rngs: nnx.Rngs | None = None):
    del rngs  # nothing random at construction; kept for the common signature
    if stft not in ("fft", "dft"):
      raise ValueError(f"stft must be 'fft' or 'dft', got {stft!r}")
    freq_ratio = spec_size // mel_bins
    if freq_ratio < 1:
      raise ValueError(f"spec_size {spec_size} < mel_bins {mel_bins}: cannot fold")
    self.sample_rate = sample_rate
    self.n_fft = n_fft
    self.hop = hop
    self.mel_bins = mel_bins
    self.fmin, self.fmax = float(fmin), float(fmax)
    self.amin, self.ref = float(amin), float(ref)
    self.spec_size = spec_size
    self.freq_ratio = freq_ratio
    self.target_frames = int(spec_size * freq_ratio)   # 1024
    self.target_bins = spec_size // freq_ratio         # 64
    if spec_size % freq_ratio or self.target_frames % freq_ratio:
      raise ValueError(f"spec_size {spec_size} is not divisible by freq_ratio {freq_ratio}")
    if mel_bins > self.target_bins:
      raise ValueError(f"{mel_bins} mel bins do not fit the {self.target_bins} image bins")
    self.num_samples = num_samples
    self.time_drop_width, self.time_stripes_num = time_drop_width, time_stripes_num
    self.freq_drop_width, self.freq_stripes_num = freq_drop_width, freq_stripes_num
    self.stft = stft
    self.check_finite = check_finite
    if num_samples is not None:
      _check_shape_dtype((1, num_samples), np.float32, num_samples=None,
                         min_samples=n_fft // 2 + 1)
      if self.num_frames(num_samples) > self.target_frames:
        raise ValueError(f"{num_samples} samples give {self.num_frames(num_samples)} frames, "
                         f"more than the {self.target_frames} the image holds")

    window = hann_window(n_fft)
    tables = dict(window=window.astype(np.float32),
                  mel_fb=slaney_mel_filterbank(sample_rate, n_fft, mel_bins, fmin, fmax).T)
    if stft == "dft":
      tables["dft_real"], tables["dft_imag"] = torchlibrosa_dft_basis(n_fft, window)
    key = ("LogMelFrontend", sample_rate, n_fft, mel_bins, self.fmin, self.fmax, stft)
    self.constants = _Constants(key, **tables)
    self.bn0 = BatchNorm(mel_bins, momentum=bn_momentum, eps=bn_eps)

  # -- helpers ---------------------------------------------------------------

  def num_frames(self, num_samples: int) -> int:
    return 1 + num_samples // self.hop

  def check_waveform(self, wave):
    """Static checks always; the finite check only on concrete arrays (see module doc)."""
    _check_shape_dtype(wave.shape, wave.dtype, num_samples=self.num_samples,
                       min_samples=self.n_fft // 2 + 1)
    if self.check_finite and not isinstance(wave, jax.core.Tracer):
      _check_finite_host(np.asarray(wave, np.float32))

  def _frames(self, wave):
    """(B, samples) → (B, frames, n_fft) after reflect padding, without a gather.

    With g = gcd(hop, n_fft) the padded signal is viewed as blocks of g samples;
    frame t is blocks [t·hop/g, t·hop/g + n_fft/g), so the frames are n_fft/g
    strided slices of the block array (16 slices of stride 5 for 320/1024).
    """
    pad = self.n_fft // 2
    x = jnp.pad(wave, ((0, 0), (pad, pad)), mode="reflect")
    n_frames = self.num_frames(wave.shape[1])
    g = math.gcd(self.hop, self.n_fft)
    stride, width = self.hop // g, self.n_fft // g
    used = (n_frames - 1) * self.hop + self.n_fft
    blocks = x[:, :used].reshape(x.shape[0], used // g, g)
    parts = [blocks[:, j:j + stride * (n_frames - 1) + 1:stride] for j in range(width)]
    return jnp.concatenate(parts, axis=-1)

  # -- stages ----------------------------------------------------------------

  def spectrogram(self, wave):
    """(B, samples) → power spectrogram (B, frames, n_fft // 2 + 1)."""
    self.check_waveform(wave)
    wave = jnp.asarray(wave)
    dtype = layers.at_least_f32(wave.dtype)
    frames = self._frames(wave.astype(dtype))
    c = self.constants
    if self.stft == "fft":
      z = jnp.fft.rfft(frames * jnp.asarray(c.window, dtype), axis=-1)
      real, imag = jnp.real(z), jnp.imag(z)
    else:
      real = jnp.matmul(frames, jnp.asarray(c.dft_real, dtype), precision=HIGHEST)
      imag = jnp.matmul(frames, jnp.asarray(c.dft_imag, dtype), precision=HIGHEST)
    return real * real + imag * imag

  def power_to_db(self, mel):
    log_spec = 10.0 * jnp.log10(jnp.maximum(mel, self.amin))
    return log_spec - 10.0 * math.log10(max(self.amin, self.ref))

  def logmel(self, wave):
    """(B, samples) → log-mel (B, frames, mel_bins) in dB (no top_db), before bn0."""
    mel = jnp.matmul(self.spectrogram(wave), jnp.asarray(self.constants.mel_fb),
                     precision=HIGHEST)
    return self.power_to_db(mel)

  def normalize(self, x, *, batch_stats: bool):
    """bn0 over the mel bins. batch_stats=True: normalise with the batch
    statistics of (B, frames) and update the running ones (PyTorch train mode)."""
    return self.bn0(x, use_running_average=not batch_stats)

  def spec_augment(self, x, rngs: nnx.Rngs):
    """torchlibrosa SpecAugmentation on (B, frames, bins), independently per example.

    Per stripe: width ~ U{0, …, drop_width − 1}, start ~ U{0, …, total − width − 1},
    [start, start + width) set to exactly 0 (so, as in torchlibrosa, the last
    frame / bin is never dropped). Same distribution as the reference, different
    random stream (JAX keys from `rngs.dropout()`).
    """
    if rngs is None:
      raise ValueError("spec_augment needs `rngs` with a 'dropout' stream")
    key_t, key_f = jax.random.split(rngs.dropout())
    x = self._drop_stripes(key_t, x, 1, self.time_drop_width, self.time_stripes_num)
    return self._drop_stripes(key_f, x, 2, self.freq_drop_width, self.freq_stripes_num)

  @staticmethod
  def _drop_stripes(key, x, axis: int, drop_width: int, stripes_num: int):
    if stripes_num == 0 or drop_width <= 1:
      return x
    total = x.shape[axis]
    if total < drop_width:
      raise ValueError(f"SpecAugment: axis {axis} has {total} entries, fewer than the drop "
                       f"width {drop_width} (torchlibrosa would fail at random)")
    key_w, key_s = jax.random.split(key)
    width = jax.random.randint(key_w, (x.shape[0], stripes_num), 0, drop_width)
    start = jax.random.randint(key_s, (x.shape[0], stripes_num), 0, total - width)
    pos = jnp.arange(total)
    hit = (pos >= start[..., None]) & (pos < (start + width)[..., None])  # (B, n, total)
    drop = hit.any(axis=1)
    drop = drop[:, :, None] if axis == 1 else drop[:, None, :]
    return jnp.where(drop, jnp.zeros((), x.dtype), x)

  def resize_time(self, x):
    """reshape_wav2img's bicubic (align_corners=True) resize to (target_frames, target_bins).

    Like the reference, an axis is only resized when it is shorter than the
    target; longer inputs are an error (the reference asserts).
    """
    _, t, f = x.shape
    if t > self.target_frames or f > self.target_bins:
      raise ValueError(f"({t} frames, {f} bins) exceed the image's ({self.target_frames}, "
                       f"{self.target_bins})")
    if t < self.target_frames:
      x = resize.resize_axis(x, self.target_frames, 1, align_corners=True)
    if f < self.target_bins:
      x = resize.resize_axis(x, self.target_bins, 2, align_corners=True)
    return x

  def fold(self, x):
    """(B, target_frames, target_bins) → (B, spec, spec, 1): row = chunk·bins + bin,
    column = frame within the chunk (the reference's permute/reshape, NHWC)."""
    b, t, f = x.shape
    r = self.freq_ratio
    x = x.reshape(b, r, t // r, f).transpose(0, 1, 3, 2)
    return x.reshape(b, r * f, t // r)[..., None]

  def to_image(self, x):
    return self.fold(self.resize_time(x))

  # -- chains ----------------------------------------------------------------

  def _modes(self, deterministic, rngs, bn0_batch_stats, spec_augment):
    batch_stats = (not deterministic) if bn0_batch_stats is None else bool(bn0_batch_stats)
    augment = (not deterministic) if spec_augment is None else bool(spec_augment)
    if augment and rngs is None:
      raise ValueError("SpecAugment is on but no `rngs` (with a 'dropout' stream) was given")
    return batch_stats, augment

  def stages(self, wave, *, deterministic: bool = True, rngs: nnx.Rngs | None = None,
             bn0_batch_stats: bool | None = None, spec_augment: bool | None = None) -> dict:
    """Every intermediate, keyed like the golden fixture (+ 'augmented').

    One forward: bn0's running statistics are updated once when batch stats are on.
    """
    batch_stats, augment = self._modes(deterministic, rngs, bn0_batch_stats, spec_augment)
    out = {"spectrogram": self.spectrogram(wave)}
    mel = jnp.matmul(out["spectrogram"], jnp.asarray(self.constants.mel_fb), precision=HIGHEST)
    out["logmel"] = self.power_to_db(mel)
    out["bn0"] = x = self.normalize(out["logmel"], batch_stats=batch_stats)
    if augment:
      out["augmented"] = x = self.spec_augment(x, rngs)
    out["interp_time"] = x = self.resize_time(x)
    out["img"] = self.fold(x)
    return out

  def __call__(self, wave, *, deterministic: bool = True, rngs: nnx.Rngs | None = None,
               bn0_batch_stats: bool | None = None, spec_augment: bool | None = None):
    """(B, samples) → (B, spec_size, spec_size, 1) NHWC.

    bn0_batch_stats / spec_augment default to `not deterministic`; the reference
    (frozen HTS-AT in train mode) is deterministic=False.
    """
    batch_stats, augment = self._modes(deterministic, rngs, bn0_batch_stats, spec_augment)
    x = self.normalize(self.logmel(wave), batch_stats=batch_stats)
    if augment:
      x = self.spec_augment(x, rngs)
    return self.to_image(x)
