"""The numpy weight rule reproduces every manifest checksum of the golden fixtures."""
import pytest

import golden_weights


@pytest.mark.parametrize("name", ["adapter_small", "ave_head", "ave_full"])
def test_rule_reproduces_manifest(golden_dir, name):
  state = golden_weights.golden_state_dict(golden_dir / f"{name}_manifest.json",
                                           golden_dir / "ave_full_computed_buffers.npz")
  assert len(state) > 50


def test_rule_rejects_unknown_rule():
  with pytest.raises(ValueError, match="no generator"):
    golden_weights.rule_value("x.weight", (2, 2), "mystery")
