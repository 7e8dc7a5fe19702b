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
    run(
        ip,
        "import time\n_slow = forward_propagation_n\n"
        "def forward_propagation_n(X, Y, parameters):\n    time.sleep(0.015)\n    return _slow(X, Y, parameters)",
    )
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
    assert "relative error per entry" not in shown[1][0]["text/html"]  # no content only the widget has
    assert "relative error per entry" in shown[0][0]._repr_html_()  # it is in the table's output
    shown.clear()
    run(ip, "%gradcheck --no-widgets")
    assert len(shown) == 1
    shown.clear()
    run(ip, "r = %gradcheck -o")
    assert shown == []


def test_by_default_a_kernel_shows_only_the_static_output(ip, monkeypatch):
    """No widget view by default: saved, it would show "Error displaying widget: model not found" once the
    kernel is gone; the static sections pick a block, and the worst one starts open."""
    load_convention(ip, "seed_net", replace=SEED_FIX)
    shown = []
    monkeypatch.setattr(gw, "widgets_supported", lambda shell: True)
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.append(a))
    run(ip, "%gradcheck_config --reset progress=false")
    run(ip, "%gradcheck")
    assert len(shown) == 1 and not isinstance(shown[0][0], dict)
    html = shown[0][0]._repr_html_()
    assert "<details class='gradcheck-block' open" in html and "widget-view" not in html


def test_notebook_progress_bar_leaves_no_widget_view_in_the_output(monkeypatch):
    """In a notebook the bar is a display of ours, emptied when it closes (finished or interrupted)."""
    import tqdm.auto
    import tqdm.notebook

    from gradcheck_magic.progress import EMPTIED, Bar

    published = []

    class Handle:
        def update(self, obj, raw=False):
            published.append(("update", obj, raw))

    def display(obj, display_id=False):
        published.append(("display", obj, display_id))
        return Handle()

    class NotebookBar(tqdm.notebook.tqdm_notebook):
        @staticmethod
        def status_printer(*args, **kwargs):
            import ipywidgets

            return ipywidgets.HBox([ipywidgets.HTML(), ipywidgets.FloatProgress(), ipywidgets.HTML()])

    monkeypatch.setattr(tqdm.auto, "tqdm", NotebookBar)
    monkeypatch.setattr("IPython.display.display", display)
    bar = Bar(100)
    bar(10)  # interrupted at 10 %
    bar.close()
    assert [p[0] for p in published] == ["display", "update"]
    assert published[0][2] is True and published[1][1:] == (EMPTIED, True)
    assert not any(EMPTIED.values())


def _pixels(data_uri):
    import base64
    import io

    from PIL import Image

    png = base64.b64decode(data_uri.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def _has(pixels, rgb):
    return bool(np.all(pixels[..., :3] == rgb, axis=-1).any())


def _picture(result, name):
    from gradcheck_magic import heatmap

    return heatmap.picture(result.blocks[name], result.settings.threshold, result.settings.fail_threshold)


def test_heatmap_scale_is_fixed_so_a_passing_block_is_never_red_and_a_failing_one_is(ip):
    from gradcheck_magic.palette import AMBER, GREEN, RED

    load_convention(ip, "seed_net", replace=SEED_FIX)
    result = check(ip)
    for name, status in result.table["status"].items():
        pixels = _pixels(_picture(result, name).data_uri)
        assert _has(pixels, RED) == (status == "fail"), name
        assert not _has(pixels, AMBER), name
        if status == "pass":
            assert _has(pixels, GREEN) and pixels[..., 3].max() > 0
    b3 = _pixels(_picture(result, "b3").data_uri)  # a passing one-entry block: pale, not dark
    assert b3[b3.shape[0] // 2, b3.shape[1] // 2, 3] < 0.6 * 255


def test_heatmap_rings_the_table_worst_index(ip):
    from gradcheck_magic.heatmap import MARKER_OUTER, MIN_CELL_PIXELS

    load_convention(ip, "l_layer")
    run(
        ip,
        "np.random.seed(3); X = np.random.randn(40, 6); parameters = initialize_parameters_deep([40, 30, 1])",
    )
    result = check(ip, "--mode full")
    worst = result.table.loc["W1", "worst_index"]
    picture = _picture(result, "W1")
    assert picture.worst == worst and picture.grid == (30, 40)
    pixels = _pixels(picture.data_uri)
    side = picture.width // 40
    assert side >= MIN_CELL_PIXELS
    top, left = worst[0] * side, worst[1] * side
    ring_row = pixels[max(top - 3, 0), max(left - 3, 0) : left + side + 3, :3]
    assert (ring_row == MARKER_OUTER[:3]).all() or top < 3
    assert f"worst entry W1[{worst[0]}, {worst[1]}], ringed" in gw.block_html(result, "W1")


def test_kinks_are_drawn_striped_not_as_errors(ip):
    from test_verdicts import KINK as PLANT_KINK

    from gradcheck_magic.palette import KINK, RED

    load_convention(ip, "seed_net")
    run(ip, PLANT_KINK)
    result = check(ip)
    assert result.table.loc["W1", "status"] == "warn"
    pixels = _pixels(_picture(result, "W1").data_uri)
    assert _has(pixels, KINK) and not _has(pixels, RED)
    assert "kink, not judged" in gw.block_html(result, "W1")


def one_wrong_entry_result(shape, worst, numeric_value, rel_error):
    """A failing one-block result "W" of ones whose numeric gradient differs at ``worst`` alone."""
    from gradcheck_magic.engine import Outcome, Settings
    from gradcheck_magic.result import GradCheckResult

    analytic = np.ones(shape)
    numeric = analytic.copy()
    numeric[worst] = numeric_value
    o = Outcome(
        "W",
        shape,
        numeric=numeric,
        analytic=analytic,
        checked=np.ones(shape, bool),
        status="fail",
        rel_error=rel_error,
        worst_index=worst,
    )
    return GradCheckResult([o], rel_error, Settings(), "full", 1)


def test_big_blocks_pool_entries_and_scroll_inside_their_box():
    result = one_wrong_entry_result((20, 1000), (3, 777), 2.0, rel_error=0.01)
    picture = _picture(result, "W")
    assert picture.pooled == (1, 7) and picture.width <= 480 + 20
    html = gw.block_html(result, "W")
    assert "each cell is the largest of 1×7 entries" in html and "overflow:auto" in html
    assert "<details>" in html  # a big block's numbers are on demand


def test_drilldown_preselects_the_worst_block_with_entry_data(ip):
    load_convention(ip, "seed_net", replace=[('"dW3": dW3, ', ""), SEED_FIX[0]])
    result = check(ip)
    assert result.table.loc["W3", "status"] == "fail"  # missing: no entries to show
    assert gw.default_block(result) == "W2"
    assert "No entry-by-entry comparison" in gw.block_html(result, "W3")


def test_every_view_of_the_widget_is_in_the_static_output(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    result = check(ip)
    static = result._repr_html_()
    box = result.drilldown()
    for name in result.table.index:
        box.children[0].value = name
        assert _picture(result, name).data_uri in box.children[1].value
        assert _picture(result, name).data_uri in static  # the widget adds interaction, not content
    assert "suspect lines in <code>backward_propagation_n</code>" in static


def test_worst_entries_list_judged_entries_first_and_mark_a_kink(ip):
    from test_verdicts import KINK as PLANT_KINK

    load_convention(ip, "seed_net")
    run(ip, PLANT_KINK)
    result = check(ip)
    o = result.blocks["W1"]
    assert o.kinks is not None and o.kinks.any()
    rows = result.worst_entries("W1", k=o.kinks.size)
    assert rows[0]["index"] == tuple(result.table.loc["W1", "worst_index"])  # the ringed one first
    judged = [r["judged"] for r in rows]
    assert judged == sorted(judged, reverse=True) and not all(judged)  # kinks after, marked
    kink = next(r for r in rows if not r["judged"])
    assert o.kinks[kink["index"]]


def test_progress_suggests_fast_mode_when_the_estimate_overruns_the_budget(capsys):
    from gradcheck_magic.engine import Settings
    from gradcheck_magic.progress import SUGGEST_FAST

    full = progress_factory(True, settings=Settings(mode="full", time_budget=1.0))
    bar = full(1000, 5.0)
    assert bar.suggested and SUGGEST_FAST in str(bar._bar)
    bar.close()
    assert not progress_factory(True, settings=Settings(mode="fast", time_budget=1.0))(1000, 5.0).suggested
    # auto mode: the engine's choice decides (a count chose full, so fast would help; fast chosen: no hint)
    auto = progress_factory(True, settings=Settings(mode="auto", time_budget=1.0))
    assert not auto(1000, 5.0, "fast").suggested
    assert auto(1000, 5.0, "full").suggested
    assert (
        progress_factory(True, settings=Settings(mode="full", time_budget=10.0))(1000, 5.0).suggested is False
    )


def test_progress_reestimates_the_eta_as_it_runs(capsys):
    from gradcheck_magic.progress import Bar

    now = [0.0]
    bar = Bar(1000, estimated_seconds=1.5, budget=2.0, suggest_fast=True, clock=lambda: now[0])
    assert not bar.suggested
    now[0] = 0.5
    bar(100)  # 10 % after 0.5 s: 5 s in all, over the 2 s budget
    assert bar.suggested
    bar.close()
    steady = Bar(1000, estimated_seconds=1.5, budget=2.0, suggest_fast=True, clock=lambda: now[0])
    now[0] += 0.1
    steady(500)  # half-way after 0.1 s
    assert not steady.suggested
    steady.close()


def test_progress_bar_widget_is_removed_even_after_an_interrupt():
    from gradcheck_magic.progress import Bar

    class FakeNotebookBar:
        def __init__(self):
            import ipywidgets

            self.container = ipywidgets.HBox()
            self.n, self.total, self.closed = 0, 100, False

        def update(self, n):
            self.n += n

        def close(self):
            self.closed = True

    bar = Bar(100)
    bar._bar.close()
    bar._bar = FakeNotebookBar()
    bar(10)  # interrupted at 10 %
    bar.close()
    assert bar._bar.closed and bar._bar.container.layout.display == "none"


def test_numbers_window_is_centred_on_the_table_worst_index():
    html = gw.block_html(one_wrong_entry_result((60, 60), (26, 19), 1.5, rel_error=0.004), "W")
    assert "Showing rows 14–37, columns 7–30 of 60×60, around the worst entry" in html
    assert "worst entry W[26, 19], ringed" in html
