"""Typed string arguments of `get_config(arg)`."""
import pytest

from dgsct_jax import config_utils


def _parse(arg):
  return config_utils.parse_arg(arg, variant="large", clean=False, epochs=50, lr=5e-4)


def test_defaults_and_typed_values():
  c = _parse(None)
  assert (c.variant, c.clean, c.epochs, c.lr) == ("large", False, 50, 5e-4)
  c = _parse("variant=tiny, clean ,epochs=3,lr=1e-3")
  assert (c.variant, c.clean, c.epochs, c.lr) == ("tiny", True, 3, 1e-3)
  assert isinstance(c.epochs, int) and isinstance(c.lr, float)
  assert _parse("clean=false").clean is False and _parse("clean=1").clean is True


@pytest.mark.parametrize("arg,message", [
    ("varient=tiny", "unknown config arg 'varient'"),
    ("epochs=three", "epochs='three': expected int"),
    ("clean=maybe", "expected a boolean"),
    ("epochs", "needs a value"),
    ("lr=fast", "expected float"),
])
def test_bad_args_fail_with_the_name(arg, message):
  with pytest.raises(ValueError, match=message):
    _parse(arg)


def test_result_is_locked():
  c = _parse("")
  with pytest.raises(AttributeError):
    c.new_field = 1
