"""Issue 18's edges: no warning on correct code, nothing to check in an empty block, and verdicts
that a difference within round-off never decides."""

from conftest import check, homework_difference, load, load_convention, run

EMPTY_MODEL = """
class EmptyNet:
    def __init__(self):
        rng = np.random.default_rng(0)
        self.params = {"W1": rng.normal(size=(4, 3)), "W3": np.zeros((0, 3))}

    def loss(self, X, y):
        h = X @ self.params["W1"]
        loss = 0.5 * float(np.sum(h ** 2)) + self.params["W3"].sum()
        g = {}
        g["W1"] = X.T @ h
        g["W3"] = np.zeros((0, 3))
        return loss, g

model = EmptyNet()
X = np.random.default_rng(1).normal(size=(5, 4)); y = np.zeros(5, int)
"""


def test_an_empty_0x3_parameter_passes_with_a_note_and_no_suspect(ip):
    run(ip, EMPTY_MODEL)
    for mode in ("full", "fast"):
        result = check(ip, f"model --mode {mode}")
        assert result.passed and not result.warned, result
        assert "nothing to check" in result.table.loc["W3", "note"]
        assert result.table.loc["W3", "suspect"] == ""


def test_the_fraud_detection_final_check_with_the_homework_epsilon_passes_cleanly(ip):
    """b1 and b3 differ by round-off at ε = 1e-7 (3e-7 > threshold 2e-7); measured at a wider step
    they agree, so they pass (the table keeps the homework's figures)."""
    load_convention(ip, "seed_net")
    result = check(ip, "-e 1e-7 -t 2e-7")
    assert result.passed and not result.warned, result
    assert abs(result.difference - homework_difference()) < 1e-15


def test_cs231n_three_layer_convnet_W2_W3_are_verified_not_unverifiable(ip):
    """weight_scale 1e-3 makes W2 and W3's gradients ~1e-6: round-off at the default step hides the
    fail line, so every entry is measured again at a wider step.  Never a fail (kinks everywhere)."""
    for seed in range(3):
        load(
            ip,
            "cs231n_layers",
            "cs231n_convnet",
            setup=f"model = ThreeLayerConvNet(seed={seed}); X, y = convnet_test_case({seed})",
        )
        result = check(ip, "model")
        assert not result.failed, result
        assert not {"W2", "W3"} & set(result.warned), result
