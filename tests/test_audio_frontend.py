"""HTS-AT log-mel front end vs torchlibrosa / librosa / the official golden outputs.

Error measures used below (log-mel in dB):
* rel = max|ours − ref| / max|ref| over the compared elements (the issue's ≤ 1e-5);
* dB  = max|ours − ref| per element, in dB (a relative error of the mel *power*:
  1e-4 dB ≈ 2.3e-5 relative power).
For tonal signals some mel bins lie > 60 dB below the clip's peak, where a
float32 STFT has no significant digits left (the reference and a float64 STFT
disagree there by up to ~0.1 dB too); there the comparison is restricted to
bins within 60 dB of the peak, and the rest only has to stay within 1 dB.
"""
import numpy as np
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from dgsct_jax.models.encoders import audio_frontend as af
from torch_refs import import_torch

SR = 32000
N_1S = 32000  # 1-second signals keep the torchlibrosa comparisons fast (101 frames)


def _signals():
  rng = np.random.default_rng(0)
  t = np.arange(N_1S) / SR
  return {
      "noise": 0.1 * rng.standard_normal(N_1S),
      "loud_noise": rng.uniform(-1, 1, N_1S),
      "quiet_noise": 1e-4 * rng.standard_normal(N_1S),
      "silence": np.zeros(N_1S),
      "dc": np.full(N_1S, 0.3),
      "click": np.eye(1, N_1S, N_1S // 2)[0],
      "tones": 0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t),
      "chirp": 0.8 * np.sin(2 * np.pi * (50 * t + (14000 - 50) / 2 * t ** 2)),
  }


SIGNALS = _signals()
TONAL = ("tones", "chirp")


def load_bn0(fe: af.LogMelFrontend, npz):
  fe.bn0.scale.set_value(jnp.asarray(npz["param_bn0.weight"]))
  fe.bn0.bias.set_value(jnp.asarray(npz["param_bn0.bias"]))
  fe.bn0.mean.set_value(jnp.asarray(npz["param_bn0.running_mean"]))
  fe.bn0.var.set_value(jnp.asarray(npz["param_bn0.running_var"]))


def rel_err(ours, ref) -> float:
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  return float(np.abs(ours - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def torchlibrosa_ref():
  """torchlibrosa (the reference's own modules) on SIGNALS: spectrogram, log-mel."""
  torch = import_torch()
  stft = pytest.importorskip("torchlibrosa.stft")
  spec = stft.Spectrogram(n_fft=1024, hop_length=320, win_length=1024, window="hann",
                          center=True, pad_mode="reflect", freeze_parameters=True)
  logmel = stft.LogmelFilterBank(sr=SR, n_fft=1024, n_mels=64, fmin=50, fmax=14000, ref=1.0,
                                 amin=1e-10, top_db=None, freeze_parameters=True)
  waves = np.stack(list(SIGNALS.values())).astype(np.float32)
  with torch.no_grad():
    s = spec(torch.from_numpy(waves))
    lm = logmel(s)
  return dict(waves=waves, spectrogram=s.numpy()[:, 0], logmel=lm.numpy()[:, 0],
              conv_real=spec.stft.conv_real.weight.numpy()[:, 0],
              conv_imag=spec.stft.conv_imag.weight.numpy()[:, 0])


# ----------------------------------------------------------------------------
# Constants
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [
    (32000, 1024, 64, 50.0, 14000.0), (16000, 512, 40, 0.0, 8000.0), (48000, 2048, 128, 20.0, 20000.0)])
def test_slaney_filterbank_equals_librosa(sr, n_fft, n_mels, fmin, fmax):
  librosa = pytest.importorskip("librosa")
  ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
  ours = af.slaney_mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
  assert ours.dtype == ref.dtype == np.float32
  np.testing.assert_array_equal(ours, ref)


def test_window_and_dft_basis_equal_torchlibrosa(torchlibrosa_ref):
  scipy_signal = pytest.importorskip("scipy.signal")
  np.testing.assert_array_equal(af.hann_window(1024),
                                scipy_signal.get_window("hann", 1024, fftbins=True))
  real, imag = af.torchlibrosa_dft_basis(1024, af.hann_window(1024))
  np.testing.assert_array_equal(real.T, torchlibrosa_ref["conv_real"])
  np.testing.assert_array_equal(imag.T, torchlibrosa_ref["conv_imag"])


def test_constants_are_not_state():
  """Only bn0's four leaves are variables: the conversion engine sees nothing else."""
  fe = af.LogMelFrontend(stft="dft")
  paths = {".".join(map(str, p)) for p, _ in nnx.state(fe).flat_state()}
  assert paths == {"bn0.scale", "bn0.bias", "bn0.mean", "bn0.var"}
  assert isinstance(fe.bn0.mean, nnx.BatchStat) and isinstance(fe.bn0.scale, nnx.Param)


# ----------------------------------------------------------------------------
# vs torchlibrosa and librosa
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("stft", ["fft", "dft"])
def test_logmel_matches_torchlibrosa(torchlibrosa_ref, stft):
  fe = af.LogMelFrontend(num_samples=None, stft=stft)
  spec = np.asarray(fe.spectrogram(torchlibrosa_ref["waves"]))
  lm = np.asarray(fe.logmel(torchlibrosa_ref["waves"]))
  assert lm.shape == torchlibrosa_ref["logmel"].shape == (len(SIGNALS), 101, 64)
  for i, name in enumerate(SIGNALS):
    ref_s, ref_l = torchlibrosa_ref["spectrogram"][i], torchlibrosa_ref["logmel"][i]
    assert np.abs(spec[i] - ref_s).max() <= 5e-6 * max(ref_s.max(), 1e-30), name
    if name in TONAL:
      strong = ref_l >= ref_l.max() - 60.0
      assert strong.mean() > 0.05
      assert np.abs(lm[i] - ref_l)[strong].max() / np.abs(ref_l).max() <= 1e-5, name
      assert np.abs(lm[i] - ref_l)[strong].max() <= 1e-3, name
      assert np.abs(lm[i] - ref_l).max() <= 1.0, name
    else:
      assert rel_err(lm[i], ref_l) <= 1e-5, name
      assert np.abs(lm[i] - ref_l).max() <= 1e-4, name  # dB, every element
  np.testing.assert_array_equal(lm[list(SIGNALS).index("silence")], -100.0)


def test_logmel_matches_librosa():
  librosa = pytest.importorskip("librosa")
  waves = np.stack([SIGNALS[k] for k in ("noise", "loud_noise", "silence", "click")]).astype(
      np.float32)
  mel = librosa.feature.melspectrogram(y=waves, sr=SR, n_fft=1024, hop_length=320, win_length=1024,
                                       window="hann", center=True, pad_mode="reflect", power=2.0,
                                       n_mels=64, fmin=50, fmax=14000)
  ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).transpose(0, 2, 1)
  ours = np.asarray(af.LogMelFrontend(num_samples=None).logmel(waves))
  for i in range(len(waves)):
    assert rel_err(ours[i], ref[i]) <= 1e-5
    assert np.abs(ours[i] - ref[i]).max() <= 1e-4


# ----------------------------------------------------------------------------
# Golden outputs of the official code
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden_frontend(golden_dir):
  g = np.load(golden_dir / "htsat_frontend_io.npz")
  fe = af.LogMelFrontend()
  load_bn0(fe, g)
  return fe, g


@pytest.mark.parametrize("stft", ["fft", "dft"])
def test_golden_stages_end_to_end(golden_dir, stft):
  g = np.load(golden_dir / "htsat_frontend_io.npz")
  fe = af.LogMelFrontend(stft=stft)
  load_bn0(fe, g)
  wave = g["input_wav_f16"].astype(np.float32)
  out = jax.tree.map(np.asarray, fe.stages(wave))
  bounds = {"spectrogram": 5e-6, "logmel": 1e-6, "bn0": 2e-6, "interp_time": 2e-6}
  for key, bound in bounds.items():
    assert out[key].shape == g[key][:, 0].shape, key
    assert rel_err(out[key], g[key][:, 0]) <= bound, key
  assert np.abs(out["logmel"] - g["logmel"][:, 0]).max() <= 5e-5  # dB
  assert out["img"].shape == (2, 256, 256, 1)
  assert rel_err(out["img"][..., 0], g["img"][:, 0]) <= 2e-6
  img = np.asarray(fe(jnp.asarray(wave)))
  np.testing.assert_array_equal(img, out["img"])


def test_golden_each_stage_from_previous(golden_frontend):
  """Stage-local errors: every stage fed with the golden output of the previous one."""
  fe, g = golden_frontend
  mel = np.asarray(jnp.matmul(jnp.asarray(g["spectrogram"][:, 0]), fe.constants.mel_fb,
                              precision=jax.lax.Precision.HIGHEST))
  assert rel_err(fe.power_to_db(mel), g["logmel"][:, 0]) <= 1e-6
  bn = fe.normalize(jnp.asarray(g["logmel"][:, 0]), batch_stats=False)
  assert np.abs(np.asarray(bn) - g["bn0"][:, 0]).max() <= 1e-5
  interp = np.asarray(fe.resize_time(jnp.asarray(g["bn0"][:, 0])))
  assert np.abs(interp - g["interp_time"][:, 0]).max() <= 1e-5
  # the fold is a pure permutation: bit-exact
  np.testing.assert_array_equal(np.asarray(fe.fold(jnp.asarray(g["interp_time"][:, 0])))[..., 0],
                                g["img"][:, 0])


def test_golden_ave_full_mel_image(golden_dir, golden_frontend):
  """The 10 clips of fixture 1 through the front end: mel_img statistics and row 0."""
  fe, _ = golden_frontend
  d = np.load(golden_dir / "ave_full_io.npz")
  wave = d["input_audio_f16"].astype(np.float32).reshape(-1, 320000)
  img = np.asarray(nnx.jit(lambda m, w: m(w))(fe, wave))
  assert tuple(d["mel_img_shape"]) == (img.shape[0], img.shape[3], img.shape[1], img.shape[2])
  np.testing.assert_allclose(img[0, 0, :, 0], d["mel_img_first256"], rtol=0, atol=5e-5)
  np.testing.assert_allclose(img.mean(dtype=np.float64), d["mel_img_mean"], rtol=1e-6)
  np.testing.assert_allclose(img.std(dtype=np.float64), d["mel_img_std"], rtol=1e-5)
  np.testing.assert_allclose(img.min(), d["mel_img_min"], atol=1e-4)
  np.testing.assert_allclose(img.max(), d["mel_img_max"], atol=1e-4)


# ----------------------------------------------------------------------------
# bn0 in train mode
# ----------------------------------------------------------------------------


def test_bn0_train_mode_equals_torch_batchnorm2d(golden_frontend):
  torch = import_torch()
  _, g = golden_frontend
  fe = af.LogMelFrontend()
  load_bn0(fe, g)
  bn = torch.nn.BatchNorm2d(64)
  with torch.no_grad():
    bn.weight.copy_(torch.from_numpy(g["param_bn0.weight"]))
    bn.bias.copy_(torch.from_numpy(g["param_bn0.bias"]))
    bn.running_mean.copy_(torch.from_numpy(g["param_bn0.running_mean"]))
    bn.running_var.copy_(torch.from_numpy(g["param_bn0.running_var"]))
  bn.train()
  logmel = g["logmel"]  # (B, 1, T, F)
  with torch.no_grad():
    ref = bn(torch.from_numpy(logmel).transpose(1, 3)).transpose(1, 3).numpy()[:, 0]
  ours = np.asarray(fe.normalize(jnp.asarray(logmel[:, 0]), batch_stats=True))
  np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-5)
  np.testing.assert_allclose(np.asarray(fe.bn0.mean.get_value()), bn.running_mean.numpy(),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(fe.bn0.var.get_value()), bn.running_var.numpy(),
                             rtol=1e-5, atol=1e-6)


def test_train_mode_chain_updates_bn0_once_and_under_jit(golden_frontend):
  _, g = golden_frontend
  wave = g["input_wav_f16"].astype(np.float32)
  eager, jitted = af.LogMelFrontend(), af.LogMelFrontend()
  load_bn0(eager, g)
  load_bn0(jitted, g)
  out = eager.stages(wave, deterministic=False, rngs=nnx.Rngs(dropout=3))
  lm = out["logmel"]
  x = np.asarray(lm, np.float64)
  mean, var = x.mean((0, 1)), x.var((0, 1), ddof=1)
  np.testing.assert_allclose(np.asarray(eager.bn0.mean.get_value()),
                             0.9 * g["param_bn0.running_mean"] + 0.1 * mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(eager.bn0.var.get_value()),
                             0.9 * g["param_bn0.running_var"] + 0.1 * var, rtol=1e-5, atol=1e-6)
  img = nnx.jit(lambda m, w, r: m(w, deterministic=False, rngs=r))(jitted, wave, nnx.Rngs(dropout=3))
  np.testing.assert_allclose(np.asarray(img), np.asarray(out["img"]), rtol=0, atol=1e-5)
  np.testing.assert_allclose(np.asarray(jitted.bn0.mean.get_value()),
                             np.asarray(eager.bn0.mean.get_value()), rtol=1e-6, atol=1e-7)


def test_modes_are_independent():
  fe = af.LogMelFrontend(num_samples=None)
  wave = np.stack([SIGNALS["noise"], SIGNALS["tones"]]).astype(np.float32)
  rngs = lambda: nnx.Rngs(dropout=0)  # noqa: E731
  clean = np.asarray(fe(wave))
  assert np.array_equal(clean, np.asarray(fe(wave, deterministic=True, rngs=rngs())))
  # running stats untouched by eval calls
  np.testing.assert_array_equal(np.asarray(fe.bn0.mean.get_value()), 0.0)
  aug_only = np.asarray(fe(wave, deterministic=False, rngs=rngs(), bn0_batch_stats=False))
  np.testing.assert_array_equal(np.asarray(fe.bn0.mean.get_value()), 0.0)
  assert (aug_only == 0).any() and not (clean == 0).any()
  stats_only = np.asarray(fe(wave, deterministic=False, spec_augment=False))
  assert not (stats_only == 0).any()
  assert np.abs(np.asarray(fe.bn0.mean.get_value())).max() > 0
  with pytest.raises(ValueError, match="rngs"):
    fe(wave, deterministic=False)
  with pytest.raises(ValueError, match="rngs"):
    fe(wave, spec_augment=True)


# ----------------------------------------------------------------------------
# SpecAugment (same distribution as torchlibrosa; RNG streams differ)
# ----------------------------------------------------------------------------


def _stripes(dropped_1d: np.ndarray):
  """Maximal runs of True as (start, width)."""
  padded = np.concatenate([[False], dropped_1d, [False]])
  edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
  return list(zip(edges[::2], edges[1::2] - edges[::2]))


def _drop_masks(x_out: np.ndarray):
  """(B, T, F) output of an all-ones input → per-example dropped frames / bins."""
  zero = x_out == 0
  time = zero.all(axis=2)
  freq = zero.all(axis=1)
  # every zero is explained by a dropped frame or bin (stripes span the other axis)
  np.testing.assert_array_equal(zero, time[:, :, None] | freq[:, None, :])
  return time, freq


_jit_augment = nnx.jit(lambda fe, x, rngs: fe.spec_augment(x, rngs))


def _augment(fe, x, seed):
  return _jit_augment(fe, x, nnx.Rngs(dropout=seed))


def test_spec_augment_structure():
  fe = af.LogMelFrontend()
  b, t, f = 128, 1001, 64
  x = jnp.ones((b, t, f), jnp.float32)
  out = np.asarray(_augment(fe, x, 0))
  assert out.shape == (b, t, f)
  assert set(np.unique(out)) <= {0.0, 1.0}
  time, freq = _drop_masks(out)
  for mask, width, total in ((time, 64, t), (freq, 8, f)):
    for row in mask:
      stripes = _stripes(row)
      assert len(stripes) <= 2  # two stripes, possibly overlapping or empty
      assert sum(w for _, w in stripes) <= 2 * (width - 1)
      if len(stripes) == 2:
        assert all(w <= width - 1 for _, w in stripes)
    assert not mask[:, -1].any()  # as in torchlibrosa, the last entry is never dropped
  # per-example independence: masks differ between examples
  assert len({row.tobytes() for row in time}) > b // 2
  # deterministic given the key, different for another key
  again = np.asarray(fe.spec_augment(x, nnx.Rngs(dropout=0)))  # eager == jit
  np.testing.assert_array_equal(out, again)
  other = np.asarray(_augment(fe, x, 1))
  assert not np.array_equal(out, other)
  # values outside the stripes are untouched
  y = jnp.asarray(np.random.default_rng(0).standard_normal((b, t, f)).astype(np.float32) + 5)
  y_out = np.asarray(_augment(fe, y, 0))
  keep = out != 0
  np.testing.assert_array_equal(y_out[keep], np.asarray(y)[keep])
  assert (y_out[~keep] == 0).all()


def test_spec_augment_distribution_matches_torchlibrosa():
  """Dropped fraction per axis and stripe count vs torchlibrosa's own sampler."""
  torch = import_torch()
  aug = pytest.importorskip("torchlibrosa.augmentation")
  b, t, f = 512, 1001, 64
  torch.manual_seed(0)
  ref_mod = aug.SpecAugmentation(time_drop_width=64, time_stripes_num=2, freq_drop_width=8,
                                 freq_stripes_num=2)
  ref_mod.train()
  with torch.no_grad():
    ref = ref_mod(torch.ones(b, 1, t, f)).numpy()[:, 0]
  ours = np.asarray(_augment(af.LogMelFrontend(), jnp.ones((b, t, f)), 0))
  (rt, rf), (ot, of) = _drop_masks(ref), _drop_masks(ours)
  for r, o, name in ((rt, ot, "time"), (rf, of, "freq")):
    r_frac, o_frac = r.mean(1), o.mean(1)
    se = np.sqrt(r_frac.var() / b + o_frac.var() / b)
    assert abs(r_frac.mean() - o_frac.mean()) < 4 * se, name
    r_none, o_none = (~r.any(1)).mean(), (~o.any(1)).mean()
    assert abs(r_none - o_none) < 0.05, name


# ----------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------


def test_bad_input_raises():
  fe = af.LogMelFrontend()
  good = np.zeros((2, 320000), np.float32)
  with pytest.raises(ValueError, match="rank 2"):
    fe(good[0])
  with pytest.raises(ValueError, match=r"rank 2.*flatten"):
    fe(good[None])
  with pytest.raises(ValueError, match="319999 samples per example, expected 320000"):
    fe(good[:, :-1])
  with pytest.raises(ValueError, match="floating"):
    fe(good.astype(np.int16))
  with pytest.raises(ValueError, match="empty"):
    fe(good[:0])
  bad = good.copy()
  bad[1, 1234] = np.nan
  with pytest.raises(ValueError, match="example 1 contains NaN at sample 1234"):
    fe(bad)
  with pytest.raises(ValueError, match="example 1 contains NaN"):
    fe.logmel(jnp.asarray(bad))
  bad[1, 1234] = np.inf
  with pytest.raises(ValueError, match="example 1 contains Inf"):
    af.validate_waveform(bad)
  with pytest.raises(ValueError, match="frames"):
    af.LogMelFrontend(num_samples=400000)
  free = af.LogMelFrontend(num_samples=None)
  with pytest.raises(ValueError, match="at least 513"):
    free.logmel(np.zeros((1, 400), np.float32))
  with pytest.raises(ValueError, match="exceed"):
    free(np.zeros((1, 400000), np.float32))
  with pytest.raises(ValueError, match="drop width"):
    free.spec_augment(jnp.ones((1, 10, 64)), nnx.Rngs(dropout=0))


def test_validate_waveform_and_jit_nan_behaviour():
  wave = np.zeros((3, 320000), np.float16)
  out = af.validate_waveform(wave)
  assert out.dtype == np.float32 and out.shape == (3, 320000)
  with pytest.raises(ValueError, match="expected 320000"):
    af.validate_waveform(np.zeros((3, 32000)))
  af.validate_waveform(np.zeros((3, 32000)), num_samples=None)
  # Under jit NaNs cannot raise: they propagate (documented); the flag finds them.
  fe = af.LogMelFrontend(num_samples=None)
  bad = np.zeros((2, 32000), np.float32)
  bad[0, 5] = np.nan
  img = np.asarray(nnx.jit(lambda m, w: m(w))(fe, bad))
  assert img.shape == (2, 256, 256, 1)
  assert np.isnan(img[0]).any() and np.isfinite(img[1]).all()
  np.testing.assert_array_equal(np.asarray(jax.jit(af.nonfinite_examples)(bad)), [True, False])


@pytest.mark.parametrize("sr,n_fft,hop,mels,samples,spec", [(16000, 400, 160, 40, 16000, 240),
                                                             (22050, 2048, 512, 128, 22050, 256)])
def test_other_configurations_match_librosa(sr, n_fft, hop, mels, samples, spec):
  """The gather-free framing (gcd(hop, n_fft) blocks) for other hop / n_fft pairs."""
  librosa = pytest.importorskip("librosa")
  wave = (0.1 * np.random.default_rng(sr).standard_normal((2, samples))).astype(np.float32)
  mel = librosa.feature.melspectrogram(y=wave, sr=sr, n_fft=n_fft, hop_length=hop, window="hann",
                                       center=True, pad_mode="reflect", power=2.0, n_mels=mels,
                                       fmin=0.0, fmax=sr / 2)
  ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).transpose(0, 2, 1)
  fe = af.LogMelFrontend(sample_rate=sr, n_fft=n_fft, hop=hop, mel_bins=mels, fmin=0.0,
                         fmax=sr / 2, num_samples=samples, spec_size=spec)
  ours = np.asarray(fe.logmel(wave))
  assert ours.shape == ref.shape == (2, 1 + samples // hop, mels)
  assert rel_err(ours, ref) <= 1e-5
  assert fe(wave).shape == (2, spec, spec, 1)
  with pytest.raises(ValueError, match="not divisible"):
    af.LogMelFrontend(sample_rate=sr, n_fft=n_fft, hop=hop, mel_bins=40, spec_size=256)
