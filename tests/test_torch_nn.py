"""PyTorch LSTM / MultiheadAttention / Dropout equivalents against torch (random weights)."""
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dgsct_jax.models import torch_nn
from torch_refs import import_torch
from weight_conversion import engine

RULES = [engine.IDENTITY]


def load_torch_state(ours, torch_module):
  state = {k: v.detach().numpy() for k, v in torch_module.state_dict().items()}
  return engine.assign(ours, engine.convert(state, ours, RULES).values)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_lstm_matches_torch(bidirectional):
  torch = import_torch()
  torch.manual_seed(0)
  ref = torch.nn.LSTM(6, 5, num_layers=1, batch_first=True, bidirectional=bidirectional)
  with torch.no_grad():  # non-zero, distinct biases so a gate-order or bias mix-up shows
    for name, p in ref.named_parameters():
      p.copy_(torch.randn_like(p) * 0.5)
  ours = load_torch_state(torch_nn.LSTM(6, 5, bidirectional=bidirectional, rngs=nnx.Rngs(0)), ref)
  x = np.random.default_rng(0).standard_normal((3, 7, 6)).astype(np.float32)
  want = ref(torch.from_numpy(x))[0].detach().numpy()
  got = np.asarray(ours(jnp.asarray(x)))
  assert got.shape == (3, 7, 10 if bidirectional else 5)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_lstm_final_state_matches_torch():
  """`return_state`: the final (h, c) of PyTorch's time-major LSTM (AVQA's question encoder)."""
  torch = import_torch()
  torch.manual_seed(1)
  ref = torch.nn.LSTM(6, 5, 1)  # time-major, as QstEncoder builds it
  with torch.no_grad():
    for p in ref.parameters():
      p.copy_(torch.randn_like(p) * 0.5)
  ours = load_torch_state(torch_nn.LSTM(6, 5, bidirectional=False, rngs=nnx.Rngs(0)), ref)
  x = np.random.default_rng(1).standard_normal((3, 7, 6)).astype(np.float32)
  _, (h, c) = ref(torch.from_numpy(x).transpose(0, 1))
  _, (our_h, our_c) = ours(jnp.asarray(x), return_state=True)
  np.testing.assert_allclose(np.asarray(our_h), h[0].detach().numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(our_c), c[0].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_lstm_lengths_match_torch_packed_sequences():
  """`lengths`: each sequence's final (h, c) at its own last step, as PyTorch's
  pack_padded_sequence gives them."""
  torch = import_torch()
  torch.manual_seed(2)
  ref = torch.nn.LSTM(6, 5, 1, batch_first=True)
  ours = load_torch_state(torch_nn.LSTM(6, 5, bidirectional=False, rngs=nnx.Rngs(0)), ref)
  x = np.random.default_rng(2).standard_normal((3, 7, 6)).astype(np.float32)
  lengths = np.asarray([7, 2, 4])
  packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                   batch_first=True, enforce_sorted=False)
  _, (h, c) = ref(packed)
  _, (our_h, our_c) = ours(jnp.asarray(x), return_state=True, lengths=jnp.asarray(lengths))
  np.testing.assert_allclose(np.asarray(our_h), h[0].detach().numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(our_c), c[0].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_lstm_init_matches_torch_ranges():
  ours = torch_nn.LSTM(4, 16, rngs=nnx.Rngs(0))
  for name in ("weight_ih_l0", "weight_hh_l0_reverse", "bias_ih_l0", "bias_hh_l0_reverse"):
    value = np.asarray(getattr(ours, name).get_value())
    assert np.abs(value).max() <= 0.25 and np.abs(value).max() > 0.2  # U(±1/sqrt(16))


@pytest.mark.parametrize("len_q, len_kv", [(5, 5), (4, 9)])
def test_multihead_attention_matches_torch(len_q, len_kv):
  torch = import_torch()
  torch.manual_seed(1)
  ref = torch.nn.MultiheadAttention(16, 4, dropout=0.3).eval()
  with torch.no_grad():
    ref.in_proj_bias.normal_()
    ref.out_proj.bias.normal_()
  ours = load_torch_state(torch_nn.MultiheadAttention(16, 4, dropout_rate=0.3, rngs=nnx.Rngs(0)), ref)
  rng = np.random.default_rng(1)
  q = rng.standard_normal((len_q, 3, 16)).astype(np.float32)
  kv = rng.standard_normal((len_kv, 3, 16)).astype(np.float32)
  want = ref(torch.from_numpy(q), torch.from_numpy(kv), torch.from_numpy(kv))[0].detach().numpy()
  got = np.asarray(ours(jnp.asarray(q), jnp.asarray(kv), jnp.asarray(kv)))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_attention_dropout_only_in_training():
  mha = torch_nn.MultiheadAttention(8, 2, dropout_rate=0.5, rngs=nnx.Rngs(0))
  x = jnp.asarray(np.random.default_rng(2).standard_normal((6, 2, 8)), jnp.float32)
  eval_out = mha(x, x, x)
  np.testing.assert_array_equal(mha(x, x, x, deterministic=True, rngs=nnx.Rngs(dropout=1)), eval_out)
  train_a = mha(x, x, x, deterministic=False, rngs=nnx.Rngs(dropout=1))
  train_b = mha(x, x, x, deterministic=False, rngs=nnx.Rngs(dropout=2))
  assert not np.allclose(train_a, eval_out) and not np.allclose(train_a, train_b)
  with pytest.raises(ValueError, match="rngs"):
    mha(x, x, x, deterministic=False)


def test_dropout_statistics():
  x = jnp.ones((200, 100))
  y = np.asarray(torch_nn.dropout(x, 0.2, deterministic=False, rngs=nnx.Rngs(dropout=0)))
  assert set(np.unique(y)) == {0.0, 1.25}
  assert abs((y == 0).mean() - 0.2) < 0.01
