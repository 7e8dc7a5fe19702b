"""``gradcheck-notebook``: execute notebooks headless and grade the checks they make, by its own rules.

For graders and CI.  Each notebook runs in a fresh kernel, in safe-path mode (its folder off the front of
``sys.path``).  A hidden first cell loads the checker's private copy of the package from this process's
own files (:mod:`gradcheck_magic.grading`); every check the notebook makes hands its inputs to that copy.
After the last cell a hidden request re-runs each check there and sends back its evidence as plain data,
which this process judges with the grader's settings (the defaults, or ``--settings``): a notebook's own
settings are shown, never used to grade, and nothing a notebook writes or displays counts as a result.
A notebook is judged by the last check of each family (the same functions, where they are defined, on
blocks of the same names and shapes), so a story that fails and then fixes its code passes; it fails when
a judged check fails, when a cell raises (unless errors are allowed), when it times out, and when it
makes no check at all (unless allowed).  Exit status 1 when any notebook does not pass.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import dataclasses
import json
import logging
import math
import os
import secrets
import shutil
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import grading
from .result import GLYPHS, note_parts

LOG_WIDTH = 120  # no line the checker prints is wider (logs, pipes)
MIN_WIDTH = 60  # nor narrower, in the narrowest terminal
NOTE_MIN_WIDTH = 30  # a note column narrower than this goes under its row instead
INDENT = "    "  # continuation lines of a wrapped summary or note
DEFAULT_TIMEOUT = 600.0
EXPECTED_ERROR_TAG = (
    "raises-exception"  # a cell its author tagged to show an error (nbclient runs on, so do we)
)
SKIP_TAG = "skip-execution"  # nbclient skips such cells; a grader runs every cell, and says so
FALLBACK_KERNEL = "python3"  # the kernel of the Python running the checker (ipykernel's native spec)
PRIVATE_PREFIX = "_gradcheck_grader_"  # the private copy's module name, with a random suffix per run
GRACE_SECONDS = 10.0  # after a timeout: time allowed to list the checks made (not re-run)
ABORTED_RETRY_SECONDS = 0.2

SANDBOX_WARNING = (
    "Notebooks are programs: the checker executes every cell with your rights (files, network, "
    "anything you can do). Run it on submissions only inside a sandbox: a container "
    '(docker run --rm --network none -v "$PWD":/work ...) or a throwaway user account with no '
    "access to anything else."
)
LIMITS = (
    "What it cannot defend: a notebook's code runs in the same process as the checker's private copy, "
    "so a determined student can still rewrite anything there (numpy, the kernel, the copy's own "
    "objects). For high stakes, grade inside a sandbox with hidden tests: code the student never sees, "
    "calling the student's functions on inputs the student never chose."
)


# ---- what one notebook's run produced ---------------------------------------------------------------
def rejudge(record: dict, grader) -> dict:
    """Each block's status decided here, by the grader's settings, from the evidence the re-run sent
    (the kernel's own statuses are not used): the engine's one verdict rule, in this process."""
    from .engine import Evidence, verdict

    known = {f.name for f in dataclasses.fields(Evidence)}
    for block in record.get("blocks", []):
        data = block.get("evidence") or {}
        values = {k: (math.nan if v is None else v) for k, v in data.items() if k in known}
        block["status"] = verdict(Evidence(**{"rel_error": math.nan, **values}), grader)
    record["failed"] = [b["name"] for b in record.get("blocks", []) if b["status"] == "fail"]
    return record


@dataclass
class Check:
    """One check the notebook made, as the checker re-ran and judged it, with the cell that made it."""

    cell: int
    record: dict
    superseded_by: int | None = None  # the cell of a later check of the same family, which counts instead

    @property
    def family(self) -> tuple:
        """Where the functions it checked are defined, and its blocks' names and shapes (computed by the
        re-run); a check that could not be re-run is a family of its own."""
        return tuple(self.record.get("family") or (f"cell {self.cell}", id(self)))

    @property
    def judged(self) -> bool:
        return self.superseded_by is None

    @property
    def error(self) -> str | None:
        """Why the checker could not re-run this check (it then counts as failing)."""
        return self.record.get("error")

    @property
    def failed(self) -> list:
        return list(self.record.get("failed", []))

    @property
    def complete(self) -> bool:
        return bool(self.record.get("complete", True))

    @property
    def headline(self) -> str:
        record = self.record
        if record.get("not_rerun"):
            return f"not re-run: {record['not_rerun']}"
        if self.error:
            return f"{GLYPHS['fail']} could not be re-run by the checker: {self.error}"
        statuses = [b["status"] for b in record.get("blocks", [])]
        warned = [b["name"] for b in record.get("blocks", []) if b["status"] == "warn"]
        if not self.complete:
            head = f"{GLYPHS['interrupted']} interrupted"
        elif self.failed:
            head = f"{GLYPHS['fail']} failed: {', '.join(self.failed)}"
        elif warned:
            head = f"{GLYPHS['warn']} passed with warnings: {', '.join(warned)}"
        else:
            head = f"{GLYPHS['pass']} passed" if statuses else f"{GLYPHS['pass']} no blocks"
        step = record.get("step")
        return (
            f"{head} — {record.get('mode', '?')} mode, {record.get('evaluations', 0)} evaluations, "
            f"ε {'auto' if step is None else f'{step:g}'}"
        )


@dataclass
class NotebookReport:
    """What the checker learned about one notebook, and its verdict."""

    path: str  # printable: bytes that are not UTF-8 shown as \\xff
    checks: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # "cell 4 raised NameError: ..." per failing cell
    fatal: str | None = None  # why the notebook could not run to its end
    notes: list = field(default_factory=list)  # e.g. the kernel substituted for a missing one
    seconds: float = 0.0
    grader: dict = field(default_factory=dict)  # the settings every check is judged by
    allow_errors: bool = False
    allow_no_checks: bool = False

    @property
    def error(self) -> str | None:
        """The reason the notebook counts as not run (None when it ran, or errors are allowed)."""
        if self.fatal:
            return self.fatal
        if self.errors and not self.allow_errors:
            return self.errors[0]
        return None

    @property
    def judged(self) -> list:
        return [c for c in self.checks if c.judged]

    @property
    def failed_blocks(self) -> list:
        """Each failing block of the judged checks, once."""
        return list(dict.fromkeys(b for c in self.judged for b in c.failed))

    @property
    def status(self) -> str:
        if self.error:
            return "ERROR"
        if any(c.failed or c.error for c in self.judged):
            return "FAIL"
        if any(not c.complete for c in self.judged):
            return "INCOMPLETE"
        return "PASS" if self.checks else "NO CHECKS"

    @property
    def ok(self) -> bool:
        return self.status == "PASS" or (self.status == "NO CHECKS" and self.allow_no_checks)

    @staticmethod
    def changed_settings(check: Check) -> dict:
        """The settings the notebook gave this check that differ from the defaults (shown, never used to
        loosen its grade)."""
        from .settings import Settings

        own = check.record.get("notebook_settings") or {}
        defaults = dataclasses.asdict(Settings())
        return {k: v for k, v in own.items() if k in defaults and v != defaults[k]}

    def summary(self, width: int = LOG_WIDTH) -> str:
        failing = sum(1 for c in self.judged if c.failed or c.error)
        text = f"{self.path}: {self.status} — {len(self.checks)} check(s), {failing} failing"
        if self.failed_blocks:
            text += f" ({', '.join(self.failed_blocks)})"
        superseded = len(self.checks) - len(self.judged)
        if superseded:
            text += f"; judged by the last check of each family ({superseded} earlier check(s) superseded)"
        changed = {}
        for check in self.judged:
            changed.update(self.changed_settings(check))
        if changed:
            text += f"; notebook settings: {_settings_text(changed)} (shown; the grader's thresholds decide)"
        if self.status == "NO CHECKS":
            text += "; allowed (--allow-no-checks)" if self.allow_no_checks else "; counts as a failure"
        problems = [self.fatal] if self.fatal else []
        problems += self.errors
        problems += [f"the check in cell {c.cell} could not be re-run" for c in self.judged if c.error]
        for problem in problems:
            text += f"; {problem}"
        for note in self.notes:
            text += f"; note: {note}"
        return _wrap(text + f" [{self.seconds:.1f}s]", width)

    def to_dict(self) -> dict:
        keep = ("functions", "mode", "step", "evaluations", "complete", "marks", "error", "not_rerun")
        keep += ("warnings",)
        row = ("name", "shape", "rel_error", "max_abs_error", "worst_index", "status", "note", "suspect")
        return {
            "notebook": self.path,
            "status": self.status,
            "error": self.error,
            "errors": self.errors,
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
            "settings": self.grader,
            "checks": [
                {
                    "cell": c.cell,
                    "summary": c.headline,
                    "family": list(map(str, c.family)),
                    "judged": c.judged,
                    "failed": c.failed,
                    "changed_settings": self.changed_settings(c),
                    **{k: c.record[k] for k in keep if k in c.record},
                    "blocks": [{k: b.get(k) for k in row} for b in c.record.get("blocks", [])],
                }
                for c in self.checks
            ],
        }


def judge(checks: list, every_check: bool) -> list:
    """Mark the checks that count: the last of each family, or every one."""
    if not every_check:
        last = {c.family: c for c in checks}
        for c in checks:
            c.superseded_by = None if last[c.family] is c else last[c.family].cell
    return checks


# ---- text ---------------------------------------------------------------------------------------------
def output_width(stream) -> int:
    """The terminal's width when printing to one (at most LOG_WIDTH), else LOG_WIDTH (logs, pipes)."""
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        terminal = False
    if not terminal:
        return LOG_WIDTH
    return max(MIN_WIDTH, min(LOG_WIDTH, shutil.get_terminal_size((LOG_WIDTH, 24)).columns))


def _wrap(text: str, width: int = LOG_WIDTH, indent: str = INDENT) -> str:
    return "\n".join(textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False))


def _settings_text(settings: dict) -> str:
    def shown(value):
        return "auto" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{k}={shown(v)}" for k, v in settings.items())


def _sci(value) -> str:
    return "—" if value is None else f"{value:.2e}"


def check_text(report: NotebookReport, check: Check, width: int = LOG_WIDTH) -> str:
    """A check as text no wider than ``width``: its headline, then one row per block, notes wrapped."""
    record = check.record
    lines = [_wrap(f"[cell {check.cell}] {check.headline}", width)]
    if not check.judged:
        lines.append(
            _wrap(
                f"{INDENT}(not judged: the check in cell {check.superseded_by} checks the same functions)",
                width,
                INDENT * 2,
            )
        )
    if record.get("functions"):
        lines.append(_wrap(f"{INDENT}checked: {record['functions']}", width, INDENT * 2))
    changed = report.changed_settings(check)
    if changed:
        lines.append(
            _wrap(
                f"{INDENT}settings this notebook set (not used to grade): {_settings_text(changed)}",
                width,
                INDENT * 2,
            )
        )
    lines.extend(_wrap(f"{INDENT}marked: {m}", width, INDENT * 2) for m in record.get("marks", []))
    rows = [
        (
            b["name"],
            str(tuple(b["shape"])),
            _sci(b["rel_error"]),
            b["status"] if b["status"] == "pass" else b["status"].upper(),
            "; ".join(note_parts(b.get("note", ""), b.get("suspect", ""))),
        )
        for b in record.get("blocks", [])
    ]
    if rows:
        header = ("block", "shape", "rel_error", "status")
        widths = [max(len(r[i]) for r in rows + [header + ("",)]) for i in range(4)]
        used = len(INDENT) + sum(w + 2 for w in widths)
        note_width = width - used
        lines.append((INDENT + "  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  note").rstrip())
        for row in rows:
            head = (INDENT + "  ".join(cell.ljust(w) for cell, w in zip(row, widths))).rstrip()
            note = row[4]
            if not note:
                lines.append(head)
            elif note_width >= NOTE_MIN_WIDTH:
                wrapped = textwrap.wrap(note, note_width, break_on_hyphens=False)
                lines.append(head.ljust(used) + wrapped[0])
                lines.extend(" " * used + rest for rest in wrapped[1:])
            else:
                lines.append(head)
                lines.extend(
                    textwrap.wrap(note, width, initial_indent=INDENT * 2, subsequent_indent=INDENT * 2)
                )
    lines.extend(_wrap(f"{INDENT}warning: {w}", width, INDENT * 2) for w in record.get("warnings", []))
    return "\n".join(lines)


def printable(path) -> str:
    """A path as text that any terminal and JSON accept: bytes that are not UTF-8 become \\xff."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


# ---- running a notebook -------------------------------------------------------------------------------
def missing_kernel(name: str) -> str | None:
    """Why a kernel cannot be started by name, or None when it is installed."""
    from jupyter_client.kernelspec import KernelSpecManager

    installed = KernelSpecManager().find_kernel_specs()
    return (
        None if name in installed else f"no kernel named {name!r} (installed: {', '.join(sorted(installed))})"
    )


def choose_kernel(nb, requested: str | None) -> tuple:
    """(kernel name, note): the one asked for, else the notebook's own, else this Python's."""
    if requested:
        if missing_kernel(requested):
            raise LookupError(missing_kernel(requested))
        return requested, None
    wanted = (nb.metadata.get("kernelspec") or {}).get("name") or FALLBACK_KERNEL
    if missing_kernel(wanted):
        return (
            FALLBACK_KERNEL,
            f"kernel {wanted!r} is not installed; ran with {FALLBACK_KERNEL} ({_python_of()})",
        )
    return wanted, None


def _python_of(name: str = FALLBACK_KERNEL) -> str:
    """The interpreter a kernel runs: jupyter_client starts a spec's bare "python" as this Python."""
    from jupyter_client.kernelspec import KernelSpecManager

    program = KernelSpecManager().get_kernel_spec(name).argv[0]
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    return sys.executable if program in bare else program


class SetupFailed(Exception):
    """The checker's copy could not be started in the kernel (not a Python kernel with numpy?)."""


def _cell_error(index: int, content: dict) -> str:
    message = str(content.get("evalue", "")).strip().splitlines()
    return f"cell {index} raised {content.get('ename', 'an error')}" + (f": {message[0]}" if message else "")


def _evidence_from(content: dict) -> list:
    """The re-run's records from the hidden request's reply (its one user expression)."""
    value = (content.get("user_expressions") or {}).get("checks") or {}
    if content.get("status") != "ok" or value.get("status") != "ok":
        failed = value if value.get("status") == "error" else content
        raise SetupFailed(
            "the checker's copy in the kernel could not re-run the checks: "
            f"{failed.get('ename', 'no reply')}: {failed.get('evalue', '')}"
        )
    text = value["data"]["text/plain"]
    records = json.loads(text if text[:1] == "[" else ast.literal_eval(text))  # as it is, or quoted
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise SetupFailed("the checker's copy in the kernel sent back something other than its records")
    return records


def run(path: Path, options) -> tuple:
    """Run one notebook in a fresh kernel, then re-run its checks with the checker's private copy: (the
    executed notebook or None, the report on its checks)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from traitlets.config import Config

    from .settings import Settings

    report = NotebookReport(
        printable(path),
        grader=options.grader,
        allow_errors=options.allow_errors,
        allow_no_checks=options.allow_no_checks,
    )
    started = time.monotonic()
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - an unreadable notebook is reported, not fatal
        report.fatal = _first_line(f"could not read: {type(exc).__name__}: {exc}")
        return None, report
    try:
        kernel, note = choose_kernel(nb, options.kernel)
    except LookupError as exc:
        report.fatal = str(exc)
        return nb, report
    if note:
        report.notes.append(note)
    skipped = [i for i, c in enumerate(nb.cells, 1) if SKIP_TAG in c.get("metadata", {}).get("tags", [])]
    if skipped:
        report.notes.append(
            f"cell(s) {', '.join(map(str, skipped))} tagged {SKIP_TAG!r}: run anyway "
            "(a grade counts every cell)"
        )

    workdir = tempfile.mkdtemp(prefix="gradcheck-")
    private = PRIVATE_PREFIX + secrets.token_hex(8)
    folder = os.path.dirname(os.path.abspath(grading.__file__))  # the copy this process runs
    hidden = nbformat.v4.new_code_cell("# gradcheck-notebook: its own setup and re-run of the checks")
    state = {"cell": 0, "deadline": math.inf}  # the clock starts once the kernel is ready
    cells = {}  # the kernel's execution count -> the cell number (from 1, as a person counts)
    raised = set()  # cells that raised

    async def request(code: str, expressions: dict | None = None) -> dict:
        """A hidden request: silent (no history, no events the notebook could hook), not in the notebook."""
        while True:
            msg_id = client.kc.execute(
                code, silent=True, store_history=False, user_expressions=expressions or {}
            )
            content = ((await client.async_wait_for_reply(msg_id, hidden)) or {}).get("content", {})
            # a kernel interrupted after a timeout aborts what was queued behind the error: ask again
            if content.get("status") != "aborted" or time.monotonic() > state["deadline"]:
                return content
            await asyncio.sleep(ABORTED_RETRY_SECONDS)

    async def re_run(rerun: bool = True) -> None:
        expression = grading.finish_expression(private, options.grader, options.imposed is not None, rerun)
        for record in _evidence_from(await request("", {"checks": expression})):
            cell = cells.get(record.get("count"), 0)
            if record.get("error") and cell in raised:
                continue  # the check did not run in the notebook either: the cell's error says why
            report.checks.append(Check(cell, rejudge(record, Settings(**options.grader))))

    async def execute() -> None:
        with open(os.path.join(workdir, "kernel.log"), "wb") as log:
            async with client.async_setup_kernel(env=_kernel_env(), stdout=log, stderr=log):
                state["deadline"] = time.monotonic() + options.timeout
                content = await request(grading.setup_source(folder, private))
                if content.get("status") != "ok":
                    raise SetupFailed(
                        f"the checker's copy could not start in kernel {kernel!r}: "
                        f"{content.get('ename', 'no reply')}: {content.get('evalue', '')}"
                    )
                try:
                    for index, cell in enumerate(nb.cells):
                        count = client.code_cells_executed + 1
                        await client.async_execute_cell(cell, index, execution_count=count)
                except CellExecutionError:
                    pass  # the failing cell is in report.errors; the checks before it are still re-run
                except CellTimeoutError:
                    report.fatal = f"timed out after {options.timeout:g} s (in cell {state['cell']})"
                    await client.km.interrupt_kernel()
                    state["deadline"] = time.monotonic() + GRACE_SECONDS
                    await re_run(rerun=False)  # listed, not re-run: the time is up
                    return
                state["cell"] = 0
                await re_run()

    def cell_starts(cell, cell_index):
        state["cell"] = cell_index + 1

    def cell_ran(cell, cell_index, execute_reply):
        content = (execute_reply or {}).get("content", {})
        if isinstance(content.get("execution_count"), int):
            cells[content["execution_count"]] = cell_index + 1
        expected = EXPECTED_ERROR_TAG in cell.get("metadata", {}).get("tags", [])
        if content.get("status") == "error":
            raised.add(cell_index + 1)
            if not expected:
                report.errors.append(_cell_error(cell_index + 1, content))

    quiet = logging.getLogger("gradcheck_magic.notebook_cli.nbclient")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=max(1, math.ceil(options.timeout)),
        timeout_func=lambda cell: max(state["deadline"] - time.monotonic(), 0.01),
        allow_errors=options.allow_errors,
        skip_cells_with_tag=f"gradcheck-notebook-runs-every-cell-{secrets.token_hex(8)}",
        resources={"metadata": {"path": os.fsdecode(os.fsencode(path.parent) or b".")}},
        # local sockets: no port on the network, and no "running over TCP without encryption" warning
        config=Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(workdir, "kernel")}}),
        on_cell_execute=cell_starts,
        on_cell_executed=cell_ran,
        log=quiet,
    )
    try:
        asyncio.run(execute())
    except CellTimeoutError:
        where = f"in cell {state['cell']}" if state["cell"] else "re-running the checks"
        report.fatal = report.fatal or f"timed out after {options.timeout:g} s ({where})"
    except DeadKernelError:
        where = f"in cell {state['cell']}" if state["cell"] else "while the checks were re-run"
        report.fatal = f"the kernel died {where} (out of memory, or the code exited?)"
    except SetupFailed as exc:
        report.fatal = _first_line(str(exc))
    except Exception as exc:  # noqa: BLE001 - a notebook that cannot run is reported, not fatal
        report.fatal = report.fatal or _first_line(f"could not execute: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    judge(report.checks, options.every_check)
    report.seconds = time.monotonic() - started
    return nb, report


def _kernel_env() -> dict:
    """The kernel's environment: safe-path mode, so its start-up imports do not come from the notebook's
    folder (Python 3.11+; older Pythons ignore it, and the hidden first cell still takes the folder off
    the front of ``sys.path`` before it imports the checker)."""
    return dict(os.environ, PYTHONSAFEPATH="1")


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else text


def check_notebook(
    path, timeout: float = DEFAULT_TIMEOUT, kernel: str | None = None, **options
) -> NotebookReport:
    """Grade one notebook (the script API of the command line; options as its flags)."""
    return run(Path(path), Options(timeout=timeout, kernel=kernel, **options))[1]


def execute(path, timeout: float = DEFAULT_TIMEOUT, kernel: str | None = None) -> tuple:
    """(executed notebook, error or None): for building the demos' stored outputs."""
    nb, report = run(Path(path), Options(timeout=timeout, kernel=kernel))
    return nb, report.error


def collect(nb) -> list:
    """(cell number from 1, result dict, text) for every result a notebook displays.  Not for grading: anyone
    can display such a bundle; grades come from the kernel's registry."""
    from .result import MIME

    found = []
    for index, cell in enumerate(nb.cells, start=1):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if MIME in data:
                payload = data[MIME]
                if isinstance(payload, str):
                    payload = json.loads(payload)
                found.append((index, payload, data.get("text/plain", payload.get("summary", ""))))
    return found


@dataclass
class Options:
    """The command line's choices that shape a notebook's run and verdict."""

    timeout: float = DEFAULT_TIMEOUT
    kernel: str | None = None
    allow_errors: bool = False
    allow_no_checks: bool = False
    every_check: bool = False
    imposed: dict | None = None  # every setting of every check, when the grader imposes them

    @property
    def grader(self) -> dict:
        """The settings every check is judged by: the imposed ones, else the defaults."""
        from .settings import Settings

        return self.imposed if self.imposed is not None else dataclasses.asdict(Settings())


# ---- the command line ----------------------------------------------------------------------------------
def positive_seconds(text: str) -> float:
    """argparse type of --timeout: a finite number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of seconds, not {text!r}")
    return value


def imposed_settings(values: list) -> dict:
    """The settings every check runs with under --settings: the defaults, with the grader's changes,
    validated exactly as ``%gradcheck_config`` validates them."""
    from IPython.core.error import UsageError

    from .magics import CONFIG_KEYS, GradCheck
    from .settings import Settings

    allowed = [f.name for f in dataclasses.fields(Settings) if f.name in CONFIG_KEYS]  # display keys excluded
    pairs = [p.strip() for value in values for p in value.split(",") if p.strip() and p.strip() != "defaults"]
    for pair in pairs:
        key = pair.partition("=")[0]
        if key not in allowed:
            raise ValueError(f"--settings: {pair!r} is not KEY=VALUE with KEY one of {', '.join(allowed)}")
    magics = GradCheck(shell=None)
    try:
        if pairs:
            magics.gradcheck_config(" ".join(pairs))
    except UsageError as exc:
        raise ValueError(f"--settings: {str(exc).removeprefix('%gradcheck_config: ')}") from None
    return dataclasses.asdict(magics.settings())


def notebooks(paths) -> list:
    """Notebooks named, and every notebook under the folders named (checkpoints skipped)."""
    found = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts))
        else:
            found.append(p)
    return found


def parser(width: int = LOG_WIDTH) -> argparse.ArgumentParser:
    fill = min(100, width - 2)
    parser = argparse.ArgumentParser(
        prog="gradcheck-notebook",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Execute notebooks headless and grade the %%gradcheck checks they make, by the grader's "
            "rules: after the last cell the checker's own copy re-runs each check, and this process "
            "judges the evidence with its settings (the defaults, or --settings; a notebook's own are "
            "shown, never used to grade). A notebook passes when the last check of each family (the "
            "same functions, wherever they are defined, on the same blocks) passes. Exits 1 when a "
            "notebook fails, raises, times out or makes no check.",
            fill,
        ),
        epilog="\n\n".join(
            [textwrap.fill("LIMITS: " + LIMITS, fill), textwrap.fill("WARNING: " + SANDBOX_WARNING, fill)]
        ),
    )
    parser.add_argument("paths", nargs="+", help="notebooks, or folders searched for *.ipynb")
    parser.add_argument("--json", action="store_true", help="print compact JSON, one notebook per line")
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds allowed per notebook (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--kernel",
        help="kernel name (default: the notebook's own; this Python's when that one is not installed)",
    )
    parser.add_argument(
        "--settings",
        action="append",
        metavar="KEY=VALUE,...",
        help="impose the settings of every check: the defaults ('defaults') or the defaults "
        "with these changes (threshold=2e-7,epsilon=1e-7); what a notebook sets, by "
        "%%gradcheck_config or a flag, is then ignored (without it, a check keeps the notebook's "
        "step and mode, and the default thresholds judge it)",
    )
    parser.add_argument(
        "--every-check", action="store_true", help="every check must pass, not only the last of each family"
    )
    parser.add_argument(
        "--allow-errors",
        action="store_true",
        help="run on past cells that raise and judge the checks collected (errors are listed)",
    )
    parser.add_argument(
        "--allow-no-checks",
        action="store_true",
        help="a notebook that runs no check does not count as a failure",
    )
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 whatever the verdicts (report only)")
    return parser


def main(argv=None) -> int:
    out = sys.stdout
    width = output_width(out)
    cli = parser(width)
    args = cli.parse_args(argv)
    try:
        imposed = imposed_settings(args.settings) if args.settings is not None else None
    except ValueError as exc:
        cli.error(str(exc))
    if args.kernel and missing_kernel(args.kernel):
        cli.error(f"--kernel: {missing_kernel(args.kernel)}")
    paths = notebooks(args.paths)
    if not paths:
        cli.error("no notebooks found in " + ", ".join(printable(p) for p in args.paths))
    options = Options(
        args.timeout, args.kernel, args.allow_errors, args.allow_no_checks, args.every_check, imposed
    )
    if hasattr(out, "reconfigure"):
        out.reconfigure(errors="backslashreplace")  # a terminal or log that cannot show ✓ still gets the rest
    if not args.json and imposed is not None:
        changed = {k: v for k, v in imposed.items() if v != Options().grader.get(k)}
        print(
            _wrap(f"settings imposed on every check: {_settings_text(changed) or 'the defaults'}", width),
            file=out,
        )
    reports = []
    for path in paths:
        if not path.exists():
            report = NotebookReport(printable(path), fatal="no such file")
        else:
            report = run(path, options)[1]
        reports.append(report)
        if args.json:
            continue
        print(_wrap(f"== {report.path} ==", width), file=out)
        for check in report.checks:
            print(check_text(report, check, width) + "\n", file=out)
        print(report.summary(width), file=out, flush=True)
    bad = [r for r in reports if not r.ok]
    if args.json:
        out.write("[\n" + ",\n".join(json.dumps(r.to_dict(), ensure_ascii=False) for r in reports) + "\n]\n")
    else:
        print(
            "\n"
            + _wrap(
                f"{len(reports)} notebook(s): {len(reports) - len(bad)} passed, {len(bad)} did not", width
            ),
            file=out,
        )
    return 0 if args.exit_zero or not bad else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
