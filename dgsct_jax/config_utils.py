"""Typed string arguments for `get_config(arg)` (big_vision `parse_arg` style).

    --config=configs/ave.py:variant=tiny,clean,epochs=3

`parse_arg(arg, variant='large', clean=False, epochs=50)` returns a ConfigDict
whose fields have the type of their default: `epochs=3` becomes an int,
`clean` alone means `clean=True`, `clean=false` is False. `choices={'variant':
('large', 'tiny')}` restricts a field to the listed values. Unknown names,
values that do not parse as the default's type and values outside the choices
raise `ValueError` naming the field and what it takes, so a typo in the command
line never silently falls back to a default.
"""
import ml_collections

_TRUE = {"1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n"}


def _convert(name: str, text: str, default):
  if isinstance(default, bool):
    lowered = text.strip().lower()
    if lowered in _TRUE:
      return True
    if lowered in _FALSE:
      return False
    raise ValueError(f"config arg {name}={text!r}: expected a boolean (true/false)")
  if isinstance(default, (int, float)):
    try:
      return type(default)(text)
    except ValueError:
      raise ValueError(f"config arg {name}={text!r}: expected {type(default).__name__}") from None
  if default is None or isinstance(default, str):
    return text
  raise TypeError(f"config arg {name}: unsupported default type {type(default).__name__}")


def arg_tokens(arg: str | None) -> dict[str, str | None]:
  """'a=1,b' → {'a': '1', 'b': None}, in order (a name given twice: its last value)."""
  tokens = {}
  for token in filter(None, (t.strip() for t in (arg or "").split(","))):
    name, has_value, text = token.partition("=")
    tokens[name.strip()] = text if has_value else None
  return tokens


def set_field(config: ml_collections.ConfigDict, path: str, value):
  """Sets the field at dotted `path` of `config`; KeyError when the config has no such
  field (a field's type is kept: a value of another type is a TypeError)."""
  *parents, leaf = path.split(".")
  node = config
  for key in parents:
    node = node[key] if isinstance(node, ml_collections.ConfigDict) and key in node else None
  if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
    raise KeyError(path)
  node[leaf] = value


def parse_arg(arg: str | None, *, choices=None, **defaults) -> ml_collections.ConfigDict:
  """Parses 'a=1,b,c=x' against typed `defaults` (and `choices` {name: allowed values});
  returns a locked ConfigDict."""
  values = dict(defaults)
  for name, text in arg_tokens(arg).items():
    if name not in defaults:
      raise ValueError(f"unknown config arg {name!r}; known: {sorted(defaults)}")
    if text is None:
      if not isinstance(defaults[name], bool):
        raise ValueError(f"config arg {name!r} needs a value ({name}=...)")
      values[name] = True
    else:
      values[name] = _convert(name, text, defaults[name])
  for name, allowed in (choices or {}).items():
    if values[name] not in allowed:
      raise ValueError(f"config arg {name}={values[name]!r}: choose one of {list(allowed)}")
  config = ml_collections.ConfigDict(values)
  config.lock()
  return config
