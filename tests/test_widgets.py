"""The drill-down widget and the progress bar."""
import numpy as np

from conftest import check, load_convention, run
from test_planted_bugs import SEED_FIX
from gradcheck_magic import widgets as gw
from gradcheck_magic.progress import progress_factory


def test_drilldown_defaults_to_the_worst_block_and_follows_the_dropdown(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    result = check(ip)
    box = result.drilldown()
    choose, view = box.children
    assert choose.value == "b1"  # fails with the largest relative error
    assert "b1 (5, 1): fail" in view.value and "relative error per entry" in view.value
    assert "Worst entries" in view.value and "<code>b1[0, 0]</code>" in view.value
    choose.value = "W2"
    assert "W2 (3, 5): fail" in view.value and "<code>W2[2, 0]</code>" in view.value
    assert "background-color" in view.value  # the heatmap


def test_large_blocks_show_a_window_around_the_worst_entry():
    from gradcheck_magic.engine import Outcome, Settings
    from gradcheck_magic.result import GradCheckResult
    g = np.ones((100, 80))
    a = g.copy()
    a[70, 60] = 3.0
    o = Outcome("W", (100, 80), numeric=a, analytic=g, checked=np.ones((100, 80), bool), status="fail")
    html = gw.block_html(GradCheckResult([o], 0.1, Settings(), "full", 1), "W")
    assert "Showing rows 58–81, columns 48–71 of 100×80" in html


def test_no_widgets_in_a_terminal_shell(ip, capsys):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    result = check(ip)
    assert gw.show_drilldown(result, ip) is False


def test_progress_bar_only_for_long_checks(capsys):
    start = progress_factory(True)
    assert start(1000, 0.2) is None  # under a second: no bar
    assert progress_factory(False)(10**6, 100.0) is None
    bar = start(100, 5.0)
    bar(40)
    bar(60)
    assert bar._bar.n == 100 and bar._bar.total == 100
    bar.close()
    assert "gradcheck" in capsys.readouterr().err


def test_slow_check_through_the_magic_shows_a_bar(ip, capsys):
    load_convention(ip, "seed_net")
    run(ip, "import time\n_slow = forward_propagation_n\n"
            "def forward_propagation_n(X, Y, parameters):\n    time.sleep(0.015)\n    return _slow(X, Y, parameters)")
    run(ip, "%gradcheck_config progress=true")
    result = check(ip, "--mode full")
    assert result.passed
    assert "gradcheck" in capsys.readouterr().err  # tqdm's text bar in a terminal
    run(ip, "%gradcheck_config progress=false")
    check(ip, "--mode full")
    assert "gradcheck:" not in capsys.readouterr().err


def test_drilldown_is_shown_under_the_table_in_a_kernel_only(ip, monkeypatch):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    shown = []
    monkeypatch.setattr(gw, "widgets_supported", lambda shell: True)
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.append(a))
    run(ip, "%gradcheck_config widgets=true")
    run(ip, "%gradcheck")
    assert len(shown) == 2 and "application/vnd.jupyter.widget-view+json" in shown[1][0]
    assert "relative error per entry" in shown[1][0]["text/html"]  # the static fallback
    shown.clear()
    run(ip, "%gradcheck --no-widgets")
    assert len(shown) == 1
    shown.clear()
    run(ip, "r = %gradcheck -o")
    assert shown == []
