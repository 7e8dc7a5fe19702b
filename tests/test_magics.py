"""The magics through a real IPython shell: options, display, config, errors."""

import pytest
from conftest import SETUPS, check, load, load_convention, run, source
from IPython.core.error import UsageError
from test_planted_bugs import SEED_FIX


def test_load_and_unload_register_and_remove_both_magics(shell):
    magics = shell.magics_manager.magics
    assert "gradcheck" in magics["line"] and "gradcheck" in magics["cell"]
    assert "gradcheck_config" in magics["line"]
    shell.run_line_magic("unload_ext", "gradcheck_magic")
    try:
        assert "gradcheck" not in magics["line"] and "gradcheck" not in magics["cell"]
        assert "gradcheck_config" not in magics["line"]
    finally:
        shell.run_line_magic("load_ext", "gradcheck_magic")
    assert "gradcheck" in magics["cell"]


def test_help_documents_every_option(ip):
    doc = ip.find_line_magic("gradcheck").__doc__
    for flag in (
        "--forward",
        "--backward",
        "--cost",
        "--params",
        "--epsilon",
        "--threshold",
        "--output",
        "--mode",
        "--sample",
        "--no-widgets",
        "--raise-on-fail",
    ):
        assert flag in doc


def test_cell_magic_runs_the_body_then_checks_the_homework(ip):
    load(ip, "seed_net", replace=SEED_FIX)
    result = ip.run_cell_magic("gradcheck", "-o", SETUPS["seed_net"])
    assert "parameters" in ip.user_ns
    assert list(result.table.index) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert result.failed == ["b1", "W2"]


def test_result_is_displayed_exactly_once(ip, capsys):
    load_convention(ip, "seed_net")
    shown = []
    ip.display_formatter.formatters["text/plain"].for_type_by_name(
        "gradcheck_magic.result", "GradCheckResult", lambda obj, p, cycle: shown.append(obj) or p.text("R")
    )
    try:
        run(ip, "%gradcheck")
        assert len(shown) == 1
        run(ip, "r = %gradcheck -o")  # assignment: no Out, no display
        assert len(shown) == 1
        ip.run_cell("%gradcheck -o", store_history=True)  # Out shows it once
        assert len(shown) == 2
    finally:
        ip.display_formatter.formatters["text/plain"].pop("gradcheck_magic.result.GradCheckResult", None)


def test_without_output_flag_nothing_is_returned(ip):
    load_convention(ip, "seed_net")
    assert ip.run_line_magic("gradcheck", "-q") is None


def test_explicit_flags_pick_the_functions(ip):
    load_convention(ip, "one_d")
    result = check(ip, "--forward forward_propagation --backward backward_propagation --params theta")
    assert list(result.table.index) == ["theta"]
    assert result.passed


def test_config_shows_sets_validates_and_resets(ip, capsys):
    ip.run_line_magic("gradcheck_config", "")
    shown = capsys.readouterr().out
    assert "epsilon" in shown and "threshold" in shown and "auto" in shown
    ip.run_line_magic("gradcheck_config", "epsilon=1e-7 threshold=2e-7 mode=full")
    magics = ip.magics_manager.registry["GradCheck"]
    assert magics.epsilon == 1e-7 and magics.threshold == 2e-7 and magics.mode == "full"
    with pytest.raises(UsageError, match="epsilon must be a positive number"):
        ip.run_line_magic("gradcheck_config", "epsilon=-1")
    with pytest.raises(UsageError, match="not a valid float"):
        ip.run_line_magic("gradcheck_config", "threshold=abc")
    with pytest.raises(UsageError, match="unknown key 'epsilonn'"):
        ip.run_line_magic("gradcheck_config", "epsilonn=1")
    with pytest.raises(UsageError, match="must not exceed fail_threshold"):
        ip.run_line_magic("gradcheck_config", "threshold=1e-3")
    assert magics.threshold == 2e-7  # a rejected line changes nothing
    ip.run_line_magic("gradcheck_config", "--reset")
    assert magics.epsilon is None and magics.threshold == 1e-7 and magics.mode == "auto"


def test_traitlets_config_reaches_the_magic(ip):
    load_convention(ip, "one_d")
    run(ip, "%config GradCheck.epsilon = 1e-7")
    result = check(ip)
    assert result.settings.epsilon == 1e-7
    assert abs(result.difference - 2.9193358e-10) < 1e-16
    magics = ip.magics_manager.registry["GradCheck"]
    with pytest.raises(Exception, match="epsilon must be a positive number"):
        magics.epsilon = -3.0
    assert magics.epsilon == 1e-7


def test_raise_on_fail_makes_the_cell_fail(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    result = ip.run_cell("%gradcheck --raise-on-fail")
    assert type(result.error_in_exec).__name__ == "GradCheckFailed"
    assert "W2" in str(result.error_in_exec)


@pytest.mark.parametrize(
    "line, message",
    [
        ("-f nope", "no forward function named 'nope'.*found forward functions: forward_propagation_n"),
        ("-b nope", "no backward function named 'nope'"),
        ("-c nope", "no cost function named 'nope'"),
        ("-p nope", "no parameters named 'nope'.*parameters"),
        ("-e -1", "epsilon must be a positive number"),
        ("--mode warp", "invalid choice"),
    ],
)
def test_bad_flags_are_usage_errors_that_name_the_fix(ip, line, message):
    load_convention(ip, "seed_net")
    with pytest.raises(UsageError, match=message):
        check(ip, line)


@pytest.mark.parametrize(
    "setup, message",
    [
        ("parameters = [1, 2]", "no parameters found"),
        ("parameters = {}", "no parameters found"),
        ("parameters = {'W1': [[1.0]]}", "no parameters found"),
    ],
)
def test_unusable_parameters_found_by_discovery(ip, setup, message):
    load(ip, "seed_net")
    run(ip, "X, Y, _ = gradient_check_n_test_case()")
    run(ip, setup)
    with pytest.raises(UsageError, match=message):
        check(ip)


@pytest.mark.parametrize(
    "setup, message",
    [
        ("params = [1, 2]", "'params' is a list: parameters must be a dict of numpy arrays"),
        ("params = {}", "'params' is an empty dict"),
        ("params = {'W1': [[1.0]]}", "params\\['W1'\\] is a list, not a numpy array"),
        ("params = {'W1': np.array(['a'])}", "dtype <U1: parameters must be real numbers"),
    ],
)
def test_unusable_parameters_named_by_flag(ip, setup, message):
    load_convention(ip, "seed_net")
    run(ip, setup)
    with pytest.raises(UsageError, match=message):
        check(ip, "-p params")


def test_forward_returning_something_unusable(ip):
    run(
        ip,
        "def my_forward(parameters): return None\n"
        "def my_backward(parameters): return {'dW': parameters['W']}\n"
        "parameters = {'W': np.ones(3)}",
    )
    with pytest.raises(UsageError, match="my_forward returned None; expected the cost"):
        check(ip)


def test_forward_returning_an_activation_without_a_cost_function(ip):
    load(ip, "planar")
    run(ip, SETUPS["planar"] + "; del compute_cost")
    with pytest.raises(UsageError, match="returns an output, not a cost.*-c/--cost"):
        check(ip)


def test_gradient_keys_that_match_no_parameter(ip):
    load_convention(
        ip,
        "seed_net",
        replace=[
            ('gradients = {"dZ3": dZ3, "dW3": dW3, "db3": db3,', 'gradients = {"gZ3": dZ3,'),
            ('"dA2": dA2, "dZ2": dZ2, "dW2": dW2, "db2": db2,', ""),
            ('"dA1": dA1, "dZ1": dZ1, "dW1": dW1, "db1": db1}', "}"),
        ],
    )
    with pytest.raises(UsageError, match="match no parameter.*'dW1'"):
        check(ip)


def test_gradient_keys_named_like_the_parameters_are_accepted(ip):
    load_convention(
        ip,
        "planar",
        replace=[
            (
                'grads = {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2}',
                'grads = {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}',
            )
        ],
    )
    assert check(ip).passed


def test_ambiguous_functions_list_the_candidates_and_the_flag(ip):
    load(ip, "planar")
    run(ip, SETUPS["planar"])
    # another implementation of the same pair (a wrapper calling forward_propagation would be the same
    # check through the same function: one candidate, the one defined last)
    other = source("planar").replace("def forward_propagation(", "def other_forward(")
    run(ip, other.replace("def backward_propagation(", "def other_backward("))
    with pytest.raises(UsageError, match="ambiguous.*-f/--forward"):
        check(ip)
    assert check(ip, "-f forward_propagation -b backward_propagation").passed


def test_missing_argument_is_named(ip):
    load(ip, "seed_net")
    run(ip, "_, _, parameters = gradient_check_n_test_case(); X = np.ones((4, 3))")
    with pytest.raises(UsageError, match="forward_propagation_n: needs `Y`, which is not defined"):
        check(ip)


def test_question_mark_shows_the_argparse_help(ip, capsys):
    ip.run_cell("%gradcheck?")
    out = capsys.readouterr().out
    assert "--forward NAME" in out and "--epsilon FLOAT" in out


def test_script_api_takes_objects_and_leaves_settings_alone(ip):
    """ipytest-style: the function the magic wraps, called from a script with objects."""
    from gradcheck_magic import Settings, gradcheck

    load_convention(ip, "seed_net", replace=SEED_FIX)
    ns = ip.user_ns
    settings = Settings()
    result = gradcheck(
        {"X": ns["X"], "Y": ns["Y"]},
        forward=ns["forward_propagation_n"],
        backward=ns["backward_propagation_n"],
        params=ns["parameters"],
        settings=settings,
        epsilon=1e-7,
    )
    assert result.failed == ["b1", "W2"] and f"{result.difference:.6g}" == "0.285093"
    assert settings.epsilon is None  # overrides apply to this run only
    with pytest.raises(Exception, match="unknown setting"):
        gradcheck(ns, epsilonn=1)


def test_prints_in_the_forward_appear_once_not_per_evaluation(ip, capsys):
    load_convention(
        ip,
        "seed_net",
        replace=[
            (
                "    m = X.shape[1]\n    W1 = parameters",
                "    print('forward called')\n    m = X.shape[1]\n    W1 = parameters",
            )
        ],
    )
    capsys.readouterr()
    result = check(ip, "--mode full")
    assert result.passed
    assert capsys.readouterr().out.count("forward called") == 1
