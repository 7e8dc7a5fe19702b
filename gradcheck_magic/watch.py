"""``%gradcheck --watch``: check as you edit.

After every cell (IPython's ``post_run_cell`` event, so never while the user's own cell runs), the
last check is run again when the cell redefined one of the functions it checked (a name now bound to
another object), and its table is updated in place through its display handle: red turns green as the
student fixes the line, without another ``%gradcheck``.  Re-runs are cheap: fast mode unless a mode
was set.  Stopping says so in one line.
"""

from __future__ import annotations

import re
import sys

#: a called name in the caption's "checked:" line (``forward_propagation_n(``, ``model.loss(``)
_CALLED = re.compile(r"([A-Za-z_][\w.]*)\s*\(")


def watched_names(result, namespace: dict) -> dict:
    """name -> the object it is bound to now, for each function the check ran (from its description)
    and each function holding a suspect line; dotted names are watched through their root object."""
    names = [m.group(1) for m in _CALLED.finditer(result.functions or "")]
    names += list(getattr(result.finding, "sources", {}) or {})
    watched = {}
    for name in names:
        root = name.split(".")[0]
        if root in namespace and callable(namespace[root]) or "." in name and root in namespace:
            watched[root] = namespace[root]
    return watched


class Watch:
    """The check being watched: how to run it again, what it checked, and where its table is."""

    def __init__(self, shell, rerun, result, handle):
        self.shell = shell
        self.rerun = rerun  # () -> GradCheckResult, the same check in watch mode's settings
        self.result = result
        self.handle = handle  # the DisplayHandle of its table (None when it was returned with -o)
        self.functions = watched_names(result, shell.user_ns)
        shell.events.register("post_run_cell", self.after_cell)

    def describe(self) -> str:
        return ", ".join(self.functions) or "nothing"

    def stop(self, why: str = "", quiet: bool = False) -> None:
        """Unhook, and say so in one line (unless the same functions stay watched)."""
        try:
            self.shell.events.unregister("post_run_cell", self.after_cell)
        except ValueError:
            pass
        if not quiet:
            print(f"gradcheck: stopped watching {self.describe()}{why}")

    def redefined(self) -> list:
        ns = self.shell.user_ns
        return [name for name, obj in self.functions.items() if ns.get(name) is not obj]

    def after_cell(self, execution_result=None) -> None:
        """Run the check again if the cell that just finished redefined a function it checked."""
        if execution_result is not None and not execution_result.success:
            return  # the cell raised: its code is half-edited, wait for the next one
        changed = self.redefined()
        if not changed:
            return
        self.functions = watched_names(self.result, self.shell.user_ns)
        try:
            result = self.rerun()
        except Exception as exc:  # the user's code raised: say which, keep watching
            print(
                f"gradcheck --watch: the re-run after {', '.join(changed)} changed raised {exc!r}",
                file=sys.stderr,
            )
            return
        self.result = result
        self.functions = watched_names(result, self.shell.user_ns) or self.functions
        if self.handle is not None:
            self.handle.update(result)
        else:
            from IPython.display import display

            self.handle = display(result, display_id=True)
