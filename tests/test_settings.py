"""The one settings validation, through every way of setting a value: flags, %gradcheck_config,
%config / ipython_config.py and the script API."""

import pytest
from conftest import check, load_convention
from IPython.core.error import UsageError
from test_planted_bugs import SEED_FIX

import gradcheck_magic


def magics(ip):
    return ip.magics_manager.registry["GradCheck"]


@pytest.mark.parametrize(
    "line, message",
    [
        ("--seed -1", "seed must be at least 0"),
        ("--probes -2", "probes must be at least 1"),
        ("--probes 0", "probes must be at least 1"),
        ("-t inf", "threshold must be a positive number"),
        ("-t nan", "threshold must be a positive number"),
        ("-e inf", "epsilon must be a positive number"),
        ("-t 1e-3", r"threshold \(0.001\) must not exceed fail_threshold"),
    ],
)
def test_bad_setting_flags_are_one_line_usage_errors(ip, line, message):
    load_convention(ip, "seed_net")
    with pytest.raises(UsageError, match=message) as info:
        check(ip, line)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "line",
    ["threshold=inf fail_threshold=inf", "seed=-1", "probes=0", "threshold=1e-3", "fail_threshold=nan"],
)
def test_config_refuses_the_same_values_and_changes_nothing(ip, line):
    before = {k: getattr(magics(ip), k) for k in ("threshold", "fail_threshold", "seed", "probes")}
    with pytest.raises(UsageError):
        ip.run_line_magic("gradcheck_config", line)
    assert {k: getattr(magics(ip), k) for k in before} == before


def test_config_raises_both_thresholds_together_in_either_order(ip):
    ip.run_line_magic("gradcheck_config", "threshold=1e-3 fail_threshold=1e-2")
    assert (magics(ip).threshold, magics(ip).fail_threshold) == (1e-3, 1e-2)
    ip.run_line_magic("gradcheck_config", "fail_threshold=1e-5 threshold=1e-7")
    assert (magics(ip).threshold, magics(ip).fail_threshold) == (1e-7, 1e-5)


def test_percent_config_threshold_above_fail_threshold_is_refused_not_clamped(ip, caplog):
    ip.run_line_magic("config", "GradCheck.threshold = 1e-3")
    assert "threshold (0.001) must not exceed fail_threshold" in caplog.text
    assert magics(ip).threshold == 1e-7 and magics(ip).fail_threshold == 1e-5
    ip.config.GradCheck.pop("threshold", None)


def test_percent_config_negative_seed_is_refused(ip, caplog):
    ip.run_line_magic("config", "GradCheck.seed = -1")
    assert "seed must be at least 0" in caplog.text
    assert magics(ip).seed == 0
    ip.config.GradCheck.pop("seed", None)


def test_rejected_reset_line_changes_nothing(ip):
    ip.run_line_magic("gradcheck_config", "threshold=2e-7")
    with pytest.raises(UsageError, match="expected key=value"):
        ip.run_line_magic("gradcheck_config", "--reset bogus")
    assert magics(ip).threshold == 2e-7


def test_misspelt_key_suggests_the_right_one(ip):
    with pytest.raises(UsageError, match="did you mean threshold"):
        ip.run_line_magic("gradcheck_config", "threshhold=1e-7")


def test_unclosed_quote_in_config_is_a_usage_error(ip):
    with pytest.raises(UsageError, match="No closing quotation"):
        ip.run_line_magic("gradcheck_config", "mode='full")


def test_bad_saved_setting_is_reported_and_reload_still_registers_the_magics(shell, capsys, caplog):
    shell.run_line_magic("config", "GradCheck.epsilon = -1.0")  # refused live, but kept in the config
    assert "epsilon must be a positive number" in caplog.text
    try:
        shell.run_line_magic("reload_ext", "gradcheck_magic")
        assert "gradcheck" in shell.magics_manager.magics["cell"]
        assert (
            "ignored a saved setting (epsilon=-1.0: epsilon must be a positive number"
            in capsys.readouterr().err
        )
        assert shell.magics_manager.registry["GradCheck"].epsilon is None
    finally:
        shell.config.GradCheck.pop("epsilon", None)
        shell.run_line_magic("reload_ext", "gradcheck_magic")


def test_script_api_validates_like_the_magic():
    with pytest.raises(gradcheck_magic.GradCheckError, match="seed must be at least 0"):
        gradcheck_magic.gradcheck({}, seed=-1)
    with pytest.raises(gradcheck_magic.GradCheckError, match="did you mean threshold"):
        gradcheck_magic.gradcheck({}, threshhold=1e-7)
    with pytest.raises(gradcheck_magic.GradCheckError, match="must not exceed fail_threshold"):
        gradcheck_magic.gradcheck({}, settings=gradcheck_magic.Settings(threshold=1e-3))


@pytest.mark.parametrize("epsilon", ["1e-300", "1e-13"])
def test_step_below_float_resolution_never_passes_the_buggy_seed_net(ip, epsilon):
    load_convention(ip, "seed_net")
    with pytest.raises(UsageError, match=f"epsilon {epsilon} .*use -e 1e-7"):
        check(ip, f"-e {epsilon}")


def test_homework_step_still_reproduces_the_homework(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    result = check(ip, "-e 1e-7 -t 2e-7")
    assert result.failed == ["b1", "W2"]


def test_quoted_function_names_are_unquoted(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    result = check(ip, '-f "forward_propagation_n" -b \'backward_propagation_n\' -p "parameters"')
    assert result.failed == ["b1", "W2"]


def test_unclosed_quote_on_the_magic_line_is_a_usage_error(ip):
    load_convention(ip, "seed_net")
    with pytest.raises(UsageError, match="No closing quotation"):
        check(ip, '-f "forward_propagation_n')


def test_misspelt_function_flag_suggests_the_name_and_never_says_parameterss(ip):
    load_convention(ip, "seed_net")
    with pytest.raises(UsageError, match="did you mean forward_propagation_n") as info:
        check(ip, "-f forward_propagation")
    with pytest.raises(UsageError, match="did you mean parameters") as info:
        check(ip, "-p parameter")
    assert "parameterss" not in str(info.value)


def test_syntax_error_in_the_cell_body_is_shown_as_the_users_own(ip, capsys):
    load_convention(ip, "seed_net")
    result = ip.run_cell("%%gradcheck\nx = (1,\n")
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "SyntaxError" in text
    assert "gradcheck_magic" not in text and "magics.py" not in text
    assert result.error_in_exec is None or isinstance(result.error_in_exec, SyntaxError)
