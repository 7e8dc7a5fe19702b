"""Objects whose methods read their own arrays, holding float32 (or integer, read-only, strided) arrays:
checked through one float64 copy per array swapped into every place the object holds it, and put
back on every path; the user's arrays never change, not even their dtype."""

import numpy as np
import pytest
from conftest import check, load, run
from IPython.core.error import UsageError

#: A cs231n-style model whose loss returns its cost in a dtype of the cell's choosing.
CAST_COST_MODEL = """
def widened(value):
    return float(np.float32(value))

class CastCost(TwoLayerNet):
    def loss(self, X, y=None):
        value, grads = super().loss(X, y)
        return {cast}(value), grads

model = CastCost(input_dim=3, hidden_dim=4, num_classes=3, seed=5)
X = np.random.default_rng(5).standard_normal((6, 3))
y = np.arange(6) % 3
"""


@pytest.mark.parametrize(
    "cast,message",
    [
        ("np.float32", r"model.loss returned a float32 cost: its precision"),
        ("widened", r"model.loss returned a cost with float32 precision"),
        ("np.int64", r"model.loss returned an integer cost"),
    ],
)
def test_a_model_whose_loss_returns_a_coarse_cost_is_refused_by_name(ip, cast, message):
    load(ip, "cs231n_layers")
    run(ip, CAST_COST_MODEL.format(cast=cast))
    with pytest.raises(UsageError, match=message):
        check(ip, "model")


def test_snapshot_rebinds_every_reachable_reference_and_restore_puts_each_back():
    from collections import OrderedDict
    from types import SimpleNamespace

    from gradcheck_magic.conventions import ObjectSnapshot

    weight, other = np.ones((2, 2), dtype=np.float32), np.zeros(3)
    layer = SimpleNamespace(W=weight, cache=(weight, other))
    net = SimpleNamespace(params={"W": weight}, layers=OrderedDict(first=layer), stack=[other, weight])
    snapshot = ObjectSnapshot({"net": net})
    stand_in = np.ones((2, 2))
    rebound, held = snapshot.rebind(weight, stand_in)
    assert sorted(rebound) == ["net.layers['first'].W", "net.params['W']", "net.stack[1]"]
    assert held == ["net.layers['first'].cache[0]"]
    assert net.params["W"] is stand_in and layer.W is stand_in and net.stack[1] is stand_in
    snapshot.restore()
    assert net.params["W"] is weight and layer.W is weight and layer.cache[0] is weight
    assert net.stack[0] is other and net.stack[1] is weight and list(net.layers) == ["first"]
    assert weight.dtype == np.float32 and stand_in.dtype == np.float64
