"""A regularization notebook holding the plain, L2 and dropout families: the %%gradcheck cell decides,
whatever ran before, and a wrong gradient never passes."""

import itertools

import pytest
from conftest import check, run, source
from IPython.core.error import UsageError

L2_BUG = [(" + (lambd / m) * W2", "")]  # dW2 misses its L2 term
DROPOUT_BUG = [("    dA1 = dA1 / keep_prob\n", "")]  # dA1 is not rescaled: W1, b1 wrong
SETUP = "X, Y, parameters = three_layer_test_case()"


def notebook(ip, l2_bug=(), dropout_bug=(), order=("l2", "dropout")):
    """All three families in one namespace, the L2 and dropout parts run in ``order``."""
    run(ip, source("three_layer"))
    for part in order:
        run(ip, source(part, replace=l2_bug if part == "l2" else dropout_bug))
    run(ip, SETUP)


@pytest.mark.parametrize("order", list(itertools.permutations(("l2", "dropout"))))
def test_cell_assigning_lambd_checks_the_wrong_l2_backward_not_dropout(ip, order):
    notebook(ip, l2_bug=L2_BUG, order=order)
    result = ip.run_cell_magic("gradcheck", "-o", "lambd = 0.7")
    assert "backward_propagation_with_regularization" in result.functions
    assert result.failed == ["W2"]


@pytest.mark.parametrize("order", list(itertools.permutations(("l2", "dropout"))))
def test_cell_assigning_keep_prob_checks_the_wrong_dropout_backward(ip, order):
    notebook(ip, dropout_bug=DROPOUT_BUG, order=order)
    result = ip.run_cell_magic("gradcheck", "-o", "keep_prob = 0.86")
    assert "backward_propagation_with_dropout" in result.functions
    assert result.failed == ["W1", "b1"]


def test_same_cell_same_choice_whatever_ran_in_between(ip):
    notebook(ip, l2_bug=L2_BUG)
    first = ip.run_cell_magic("gradcheck", "-o", "lambd = 0.7")
    run(ip, "keep_prob = 0.5")  # another cell, in between
    again = ip.run_cell_magic("gradcheck", "-o", "lambd = 0.7")
    assert first.functions == again.functions and again.failed == ["W2"]


def test_two_families_nothing_separates_are_refused_with_the_flags(ip):
    notebook(ip, l2_bug=L2_BUG)
    with pytest.raises(UsageError, match="ambiguous.*regularization.*dropout.*-f/--forward"):
        check(ip)


def test_unchosen_candidate_with_a_typo_never_aborts_the_l2_check(ip):
    notebook(ip, l2_bug=L2_BUG, dropout_bug=[("D1 < keep_prob", "D1 < keep_prop")])
    result = ip.run_cell_magic("gradcheck", "-o", "lambd = 0.7")
    assert result.failed == ["W2"]


def test_helpers_named_like_a_forward_do_not_compete(ip):
    notebook(ip)
    run(
        ip,
        """
import types
log = types.ModuleType("log")  # a module: a check gives back what the calls touch, not modules
log.calls = []
def forward_fill(X, parameters):
    log.calls.append("fill")
    return X
def compute_cost_test_case():
    log.calls.append("test_case")
    return np.ones((1, 3)), np.ones((1, 3))
""",
    )
    result = ip.run_cell_magic("gradcheck", "-o", "lambd = 0.7")
    assert "forward_propagation(X, parameters)" in result.functions and result.passed
    assert ip.user_ns["log"].calls == []


def test_a_candidate_that_is_not_chosen_is_never_run(ip):
    notebook(ip)
    run(
        ip,
        """
ran = []
def forward_propagation_with_dropout(X, parameters, keep_prob=0.5):
    ran.append(keep_prob)
    return np.zeros((1, X.shape[1])), ()
""",
    )
    ip.run_cell_magic("gradcheck", "-o", "lambd = 0.7")
    assert ip.user_ns["ran"] == []


@pytest.mark.parametrize(
    "seed", [1, 3, 4]
)  # seed 2 kills layer 1: W1, b1 gradients are 0, a bug there is invisible
@pytest.mark.parametrize(
    "family, cell, bug, failed",
    [
        ("l2", "lambd = 0.7", L2_BUG, ["W2"]),
        ("l2", "lambd = 0.7", (), []),
        ("dropout", "keep_prob = 0.86", DROPOUT_BUG, ["W1", "b1"]),
        ("dropout", "keep_prob = 0.86", (), []),
    ],
)
def test_correct_code_passes_and_planted_bugs_fail_at_several_seeds(ip, seed, family, cell, bug, failed):
    notebook(ip, l2_bug=bug if family == "l2" else (), dropout_bug=bug if family == "dropout" else ())
    run(ip, f"np.random.seed({seed})")
    run(ip, "parameters = {k: np.random.randn(*v.shape) for k, v in parameters.items()}")
    result = ip.run_cell_magic("gradcheck", "-o", cell)
    assert (
        f"backward_propagation_with_{'regularization' if family == 'l2' else 'dropout'}" in result.functions
    )
    assert result.failed == failed, result
    assert (not failed) == result.passed
