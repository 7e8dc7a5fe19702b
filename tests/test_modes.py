"""Full, fast, sampled and auto modes through the magic, including a 50k-parameter net."""

import sys
from pathlib import Path

import pytest
from conftest import check, load_convention, run
from test_planted_bugs import SEED_FIX

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import nets  # noqa: E402

BIG_BUGS = {  # backward edits on the benchmark net -> blocks that must fail
    "scale_dW2": ('"dW2": dZ2 @ A1.T / m', '"dW2": 2 * dZ2 @ A1.T / m', {"W2"}),
    "sign_dW3": ('"dW3": dZ3 @ A2.T / m', '"dW3": -dZ3 @ A2.T / m', {"W3"}),
    "missing_mask_layer1": ("dZ1 = np.dot(W2.T, dZ2) * (A1 > 0)", "dZ1 = np.dot(W2.T, dZ2)", {"W1", "b1"}),
    "transposed_dW1": ('"dW1": dZ1 @ X.T / m', '"dW1": X @ dZ1.T / m', {"W1"}),
    "slightly_off_db2": (
        '"db2": dZ2.sum(axis=1, keepdims=True) / m',
        '"db2": dZ2.sum(axis=1, keepdims=True) / m * 1.001',
        {"b2"},
    ),
}


def load_big(ip, size="50k", replace=None):
    import inspect

    source = inspect.getsource(nets)
    if replace:
        assert source.count(replace[0]) == 1
        source = source.replace(replace[0], replace[1])
    run(ip, source)
    ip.user_ns["X"], ip.user_ns["Y"], ip.user_ns["parameters"] = ip.user_ns["make_net"](size)


def test_fast_mode_on_a_50k_net_passes_with_100x_fewer_evaluations(ip):
    load_big(ip)
    result = check(ip, "--mode fast")
    assert result.passed and not result.warned, result
    assert result.mode == "fast"
    full_evaluations = 2 * nets.n_params(ip.user_ns["parameters"])
    assert full_evaluations / result.evaluations >= 100


@pytest.mark.parametrize("bug", sorted(BIG_BUGS))
def test_fast_mode_flags_exactly_the_buggy_blocks_of_a_50k_net(ip, bug):
    old, new, expected = BIG_BUGS[bug]
    load_big(ip, replace=(old, new))
    result = check(ip, "--mode fast")
    assert set(result.failed) == expected, result
    for block in expected:
        assert (
            result.table.loc[block, "worst_index"] is not None or "shape" in result.table.loc[block, "note"]
        )


def test_fast_mode_is_repeatable(ip):
    load_big(ip, "5k", replace=BIG_BUGS["scale_dW2"][:2])
    first, second = check(ip, "--mode fast"), check(ip, "--mode fast")
    assert first.table.equals(second.table)
    other = check(ip, "--mode fast --seed 3")
    assert other.failed == first.failed


def test_sample_mode_differences_k_entries_per_block(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    result = check(ip, "--sample 5")
    assert result.failed == ["b1", "W2"]
    # 5 entries differenced (an entry within a few round-offs of the threshold is measured again wider)
    assert result.blocks["W1"].checked.sum() == 5 and result.table.loc["W1", "evaluations"] >= 10
    assert result.table.loc["b3", "evaluations"] == 2
    assert "sampled 5 of 20 entries" in result.table.loc["W1", "note"]


def test_auto_mode_is_full_for_a_small_net_whatever_the_time_budget(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    assert check(ip).mode == "full"
    run(ip, "%gradcheck_config time_budget=1e-9")  # a count decides for a small problem, never a clock
    result = check(ip)
    assert result.mode == "full" and result.evaluations >= 94


def test_auto_mode_is_fast_past_the_time_budget_by_count(ip):
    load_big(ip, "5k")
    assert check(ip).mode == "full"  # 9,698 evaluations: within the 1 s budget at the nominal rate
    run(ip, "%gradcheck_config time_budget=0.1")
    result = check(ip)
    assert result.mode == "fast" and "fast mode" in result.summary()
    assert result.evaluations < 200


def test_auto_mode_on_a_500k_net_picks_fast(ip):
    load_big(ip, "500k")
    result = check(ip)
    assert result.mode == "fast" and result.passed and not result.warned, result


DEAD_UNIT = "parameters['W1'][7, :] = 0; parameters['b1'][7, 0] = 0"  # pre-activation exactly 0


def test_fast_mode_at_exact_kinks_of_a_large_net_warns_never_fails(ip):
    load_big(ip)
    run(ip, DEAD_UNIT)
    result = check(ip, "--mode fast")
    assert result.passed, result
    assert "b1[7, 0]" in result.table.loc["b1", "note"]  # bisection found the kinked entry


@pytest.mark.parametrize(
    "bug, block",
    [
        (
            (
                '"db1": dZ1.sum(axis=1, keepdims=True) / m',
                '"db1": dZ1.sum(axis=1, keepdims=True) / m * 1.001',
            ),
            "b1",
        ),
        (('"dW1": dZ1 @ X.T / m', '"dW1": dZ1 @ X.T / m * 1.001'), "W1"),
    ],
)
def test_fast_mode_still_fails_a_real_bug_beside_kinks(ip, bug, block):
    load_big(ip, replace=bug)
    run(ip, DEAD_UNIT)
    result = check(ip, "--mode fast")
    assert result.failed == [block], result


def test_fast_mode_names_a_transposed_gradient_from_a_sample(ip):
    load_big(ip, "5k", replace=BIG_BUGS["transposed_dW1"][:2])  # W1 is 64 x 50: not square
    result = check(ip, "--mode fast")
    assert result.failed == ["W1"]
    assert "dW1 is transposed (its transpose matches" in result.table.loc["W1", "note"]
    assert result.evaluations < 200  # no sweep of W1's 3,200 entries
