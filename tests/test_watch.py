"""``%gradcheck --watch`` through a real IPython shell: a failing check, then a cell that redefines the
backward with the line fixed, and the same table (the same display id) turns green without another
``%gradcheck``; ``--watch off`` stops in one line."""

import pytest
from conftest import load_convention, run, source
from test_planted_bugs import SEED_FIX

from gradcheck_magic.palette import ROW_COLOURS


@pytest.fixture
def published(ip, monkeypatch):
    """Every display message: (data, display_id, update)."""
    messages = []
    publish = ip.display_pub.publish

    def record(data, metadata=None, *args, transient=None, update=False, **kwargs):
        messages.append((data, (transient or {}).get("display_id"), update))
        return publish(data, metadata, *args, transient=transient, update=update, **kwargs)

    monkeypatch.setattr(ip.display_pub, "publish", record)
    formatter = ip.display_formatter.formatters["text/html"]
    enabled, formatter.enabled = formatter.enabled, True  # as in a notebook kernel
    yield messages
    formatter.enabled = enabled
    run(ip, "%gradcheck --watch off")


def tables(messages):
    return [
        (m[0]["text/html"], m[1], m[2]) for m in messages if "gradcheck-table" in m[0].get("text/html", "")
    ]


def fixed_backward(*fixes):
    """The seed net's backward with the given planted bugs (the others fixed)."""
    text = source("seed_net", replace=fixes)
    start = text.index("def backward_propagation_n")
    end = text.index("\ndef ", start + 1) if "\ndef " in text[start + 1 :] else len(text)
    return text[start:end]


def test_watch_turns_the_same_table_green_when_a_cell_fixes_the_line(ip, published, capsys):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    run(ip, "%gradcheck --watch")
    (first_html, display_id, update), *_ = tables(published)
    assert display_id and not update and f"background-color: {ROW_COLOURS['fail'][0]}" in first_html
    assert "gradcheck: watching" in capsys.readouterr().out

    run(ip, "x_unrelated = 1")  # a cell that redefines nothing checked: no re-run
    assert len(tables(published)) == 1

    run(ip, fixed_backward(SEED_FIX[1]))  # W2's line fixed, b1's still wrong
    html, same_id, update = tables(published)[-1]
    assert same_id == display_id and update  # in place
    result = ip.magics_manager.registry["GradCheck"]._watching.result
    assert result.failed == ["b1"] and result.mode == "fast"

    run(ip, fixed_backward())  # both fixed: every row green, still no new %gradcheck
    html, same_id, update = tables(published)[-1]
    assert same_id == display_id and update
    assert f"background-color: {ROW_COLOURS['fail'][0]}" not in html and "gradient check passed" in html

    run(ip, "%gradcheck --watch off")
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("gradcheck: stopped watching")
    count = len(tables(published))
    run(ip, fixed_backward(SEED_FIX[0]))
    assert len(tables(published)) == count  # no longer watching


def test_watch_never_reruns_inside_the_users_own_cell(ip, published):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    run(ip, "%gradcheck_config watch=on")
    run(ip, "%gradcheck")
    shown = len(tables(published))
    ip.user_ns["tables_so_far"] = lambda: len(tables(published))
    # the redefinition, then more of the same cell: the re-run comes after the cell, never inside it
    run(ip, fixed_backward() + "\ninside = tables_so_far()\n")
    assert ip.user_ns["inside"] == shown and len(tables(published)) == shown + 1
    run(ip, "%gradcheck_config watch=off")


def test_watch_is_a_setting_validated_in_one_place(ip):
    from gradcheck_magic.errors import GradCheckError
    from gradcheck_magic.settings import check_value

    assert check_value("watch", True) is True
    with pytest.raises(GradCheckError, match="watch must be on or off"):
        check_value("watch", "yes")
    with pytest.raises(Exception, match="watch"):
        run(ip, "%gradcheck_config watch=maybe")
