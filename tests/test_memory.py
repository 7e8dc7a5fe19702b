"""Peak memory of a check beyond the user's arrays (issue 18, finding 7), through the real magic.

tracemalloc counts numpy's buffers and is deterministic (no timing, no load): the peak of one check,
above what was allocated before it, in multiples of the parameters' bytes.  A warm-up check first, so
that lazy imports and caches are not counted.  The bounds guard what the engine work reached; the
issue's targets (3x fast, 6x full) are the xfail below: the snapshot, the working copy and the
analytic gradient alone are three copies today.
"""

import tracemalloc

import pytest
from conftest import check
from test_modes import load_big

LINE = "-q --no-progress --no-widgets -f forward_propagation_n -b backward_propagation_n"


def peak_extra(ip, size, mode):
    """(result, peak extra memory of one check / the parameters' bytes)."""
    load_big(ip, "5k")
    ip.user_ns["SIZES"]["200k"] = (400, 400, 96)  # the benchmark's layout at about 200k parameters
    ip.user_ns["X"], ip.user_ns["Y"], ip.user_ns["parameters"] = ip.user_ns["make_net"](size)
    parameter_bytes = sum(v.nbytes for v in ip.user_ns["parameters"].values())
    check(ip, f"{LINE} --mode {mode}")  # warm-up
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = check(ip, f"{LINE} --mode {mode}")
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert result.passed and not result.warned, result
    return result, peak / parameter_bytes


def test_fast_mode_at_200k_parameters_peaks_below_7_copies_of_the_parameters(ip):
    _, ratio = peak_extra(ip, "200k", "fast")
    assert ratio <= 7.0, ratio  # 11.8x on main: per-entry NaN arrays, copies per probe step


def test_full_mode_at_5k_parameters_peaks_below_16_copies_of_the_parameters(ip):
    _, ratio = peak_extra(ip, "5k", "full")
    assert ratio <= 16.0, ratio  # 26x on main: Python lists of every step, step arrays of every entry


@pytest.mark.xfail(strict=True, reason="issue 18 target not reached: snapshot + working copy + gradient")
@pytest.mark.parametrize("size, mode, target", [("200k", "fast", 3.0), ("5k", "full", 6.0)])
def test_a_check_peaks_within_a_few_copies_of_the_parameters(ip, size, mode, target):
    _, ratio = peak_extra(ip, size, mode)
    assert ratio <= target, ratio
