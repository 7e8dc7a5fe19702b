"""Each calling convention of DESIGN.md, with and without flags; the homework's own figures."""

import math

import pytest
from conftest import check, homework_difference, load, load_convention, run
from test_planted_bugs import SEED_FIX

FLAGS = {
    "seed_net": "-f forward_propagation_n -b backward_propagation_n -p parameters",
    "one_d": "-f forward_propagation -b backward_propagation -p theta",
    "l_layer": "-f L_model_forward -c compute_cost -b L_model_backward -p parameters",
    "planar": "-f forward_propagation -c compute_cost -b backward_propagation -p parameters",
    "l2": "-f forward_propagation -c compute_cost_with_regularization "
    "-b backward_propagation_with_regularization -p parameters",
    "dropout": "-f forward_propagation_with_dropout -c compute_cost -b backward_propagation_with_dropout",
}
CHOSEN = {
    "seed_net": "forward_propagation_n(X, Y, parameters) → backward_propagation_n(X, Y, cache)",
    "one_d": "forward_propagation(x, theta) → backward_propagation(x, theta)",
    "l_layer": "L_model_forward(X, parameters) → compute_cost(AL, Y) → L_model_backward(AL, Y, caches)",
    "planar": "forward_propagation(X, parameters) → compute_cost(A2, Y) → backward_propagation(parameters, cache, X, Y)",
    "l2": "forward_propagation(X, parameters) → compute_cost_with_regularization(A3, Y, parameters, lambd) → "
    "backward_propagation_with_regularization(X, Y, cache, lambd)",
    "dropout": "forward_propagation_with_dropout(X, parameters, keep_prob) → compute_cost(a3, Y) → "
    "backward_propagation_with_dropout(X, Y, cache, keep_prob)",
}


@pytest.mark.parametrize("convention", sorted(FLAGS))
def test_discovery_without_flags_picks_the_homework_functions(ip, convention):
    load_convention(ip, convention)
    result = check(ip)
    assert result.functions == CHOSEN[convention]
    assert result.passed and not result.warned, result


@pytest.mark.parametrize("convention", sorted(FLAGS))
def test_explicit_flags_give_the_same_verdict(ip, convention):
    load_convention(ip, convention)
    result = check(ip, FLAGS[convention])
    assert result.passed and not result.warned, result


def test_l2_without_lambd_falls_back_to_the_plain_functions(ip):
    load(ip, "three_layer", "l2")
    run(ip, "X, Y, parameters = three_layer_test_case(); del lambd")
    assert check(ip).functions.endswith("backward_propagation(X, Y, cache)")


def test_seed_homework_figures_reproduce(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    run(ip, "%gradcheck_config epsilon=1e-7 threshold=2e-7")
    buggy = check(ip)
    assert f"{buggy.difference:.6g}" == "0.285093"
    assert buggy.failed == ["b1", "W2"]
    load_convention(ip, "seed_net")
    fixed = check(ip)
    assert fixed.difference < 2e-7 and fixed.passed
    assert math.isclose(fixed.difference, homework_difference(), rel_tol=1e-12)


def test_one_d_homework_figure_reproduces(ip):
    load_convention(ip, "one_d")
    result = check(
        ip, "--epsilon 1e-7 --forward forward_propagation --backward backward_propagation --params theta"
    )
    assert f"{result.difference:.10g}".startswith("2.9193358")  # the homework prints 2.919335883291695e-10
    assert math.isclose(result.difference, 2.919335883291695e-10, rel_tol=1e-9)


def test_fixed_seed_net_passes_cleanly_with_defaults(ip):
    load_convention(ip, "seed_net")
    result = check(ip)
    assert result.passed and not result.warned
    assert (result.table["rel_error"] < 1e-8).all(), result


def course_notebook(ip):
    """The gradient-checking notebook holds the 1-D functions and the net side by side."""
    load(ip, "one_d", "seed_net", replace=SEED_FIX)
    run(ip, "x, theta = 2, 4")


def test_course_notebook_net_cell_checks_the_net(ip):
    course_notebook(ip)
    result = ip.run_cell_magic("gradcheck", "-o", "X, Y, parameters = gradient_check_n_test_case()")
    assert result.failed == ["b1", "W2"]
    assert list(result.table.index) == ["W1", "b1", "W2", "b2", "W3", "b3"]


def test_course_notebook_line_magic_prefers_the_dict_of_arrays(ip):
    course_notebook(ip)
    run(ip, "X, Y, parameters = gradient_check_n_test_case()")
    assert check(ip).functions.startswith("forward_propagation_n(X, Y, parameters)")


def test_course_notebook_one_d_cell_checks_theta(ip):
    course_notebook(ip)
    run(ip, "X, Y, parameters = gradient_check_n_test_case()")
    result = ip.run_cell_magic("gradcheck", "-o", "x, theta = 2, 4")
    assert list(result.table.index) == ["theta"] and result.passed
    flagged = check(ip, "--forward forward_propagation --backward backward_propagation --params theta")
    assert list(flagged.table.index) == ["theta"]
