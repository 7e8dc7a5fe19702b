"""``gradcheck-notebook``: execute notebooks headless and grade the gradient checks they run.

For graders and CI.  Each notebook runs in a fresh kernel in which a hidden first cell starts a
grading session (:mod:`gradcheck_magic.grading`): every check that really runs is recorded there
with the settings in force, and only those records are graded — a result bundle a notebook merely
displays counts for nothing.  A notebook is judged by the last check of each family (the same
functions checked), so a story that fails and then fixes its code passes; it fails when a judged
check fails, when a cell raises (unless errors are allowed), when it times out, and when it runs no
check at all (unless allowed).  Exit status 1 when any notebook does not pass.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import math
import os
import re
import secrets
import shutil
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from .result import note_parts

WIDTH = 120  # no line the checker prints is wider
NOTE_MIN_WIDTH = 30  # a note column narrower than this goes under its row instead
INDENT = "    "  # continuation lines of a wrapped summary or note
DEFAULT_TIMEOUT = 600.0
EXPECTED_ERROR_TAG = (
    "raises-exception"  # a cell its author tagged to show an error (nbclient runs on, so do we)
)
CALLED = re.compile(r"([A-Za-z_][\w.]*)\(")  # a function or method called, in a check's description
FALLBACK_KERNEL = "python3"  # the kernel of the Python running the checker (ipykernel's native spec)

SANDBOX_WARNING = (
    "Notebooks are programs: the checker executes every cell with your rights (files, network, "
    "anything you can do). Run it on submissions only inside a sandbox: a container "
    '(docker run --rm --network none -v "$PWD":/work ...) or a throwaway user account with no '
    "access to anything else."
)


# ---- what one notebook's run produced ---------------------------------------------------------------
@dataclass
class Check:
    """One check the kernel recorded, with the cell that ran it."""

    cell: int
    record: dict
    superseded_by: int | None = None  # the cell of a later check of the same family, which counts instead

    @property
    def family(self) -> str:
        """The functions a check called (``name(`` in its description), so that what a description adds
        after them (arguments, where an upstream gradient came from) does not split a family."""
        functions = self.record.get("functions", "")
        return ", ".join(dict.fromkeys(CALLED.findall(functions))) or functions

    @property
    def judged(self) -> bool:
        return self.superseded_by is None

    @property
    def failed(self) -> list:
        return list(self.record.get("failed", []))

    @property
    def complete(self) -> bool:
        return bool(self.record.get("complete", True))


@dataclass
class NotebookReport:
    """What the checker learned about one notebook, and its verdict."""

    path: str  # printable: bytes that are not UTF-8 shown as \\xff
    checks: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # "cell 4 raised NameError: ..." per failing cell
    fatal: str | None = None  # why the notebook could not run to its end
    notes: list = field(default_factory=list)  # e.g. the kernel substituted for a missing one
    seconds: float = 0.0
    baseline: dict = field(default_factory=dict)  # the settings a check is compared against
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
        if any(c.failed for c in self.judged):
            return "FAIL"
        if any(not c.complete for c in self.judged):
            return "INCOMPLETE"
        return "PASS" if self.checks else "NO CHECKS"

    @property
    def ok(self) -> bool:
        return self.status == "PASS" or (self.status == "NO CHECKS" and self.allow_no_checks)

    def changed_settings(self, check: Check) -> dict:
        """The settings of a check that differ from the baseline (the defaults, or the grader's)."""
        settings = check.record.get("settings", {})
        return {k: v for k, v in settings.items() if k in self.baseline and v != self.baseline[k]}

    def summary(self) -> str:
        failing = sum(1 for c in self.judged if c.failed)
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
            text += f"; notebook settings: {_settings_text(changed)}"
        if self.status == "NO CHECKS":
            text += "; allowed (--allow-no-checks)" if self.allow_no_checks else "; counts as a failure"
        for problem in ([self.fatal] if self.fatal else []) + self.errors:
            text += f"; {problem}"
        for note in self.notes:
            text += f"; note: {note}"
        return _wrap(text + f" [{self.seconds:.1f}s]")

    def to_dict(self) -> dict:
        return {
            "notebook": self.path,
            "status": self.status,
            "error": self.error,
            "errors": self.errors,
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
            "checks": [
                {
                    "cell": c.cell,
                    "family": c.family,
                    "judged": c.judged,
                    "changed_settings": self.changed_settings(c),
                    **{k: v for k, v in c.record.items() if k not in ("nonce", "settings")},
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
def _wrap(text: str, indent: str = INDENT) -> str:
    return "\n".join(textwrap.wrap(text, WIDTH, subsequent_indent=indent, break_on_hyphens=False))


def _settings_text(settings: dict) -> str:
    def shown(value):
        return "auto" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{k}={shown(v)}" for k, v in settings.items())


def _sci(value) -> str:
    return "—" if value is None else f"{value:.2e}"


def check_text(report: NotebookReport, check: Check) -> str:
    """A check as text no wider than WIDTH: its headline, then one row per block, notes wrapped."""
    record = check.record
    lines = [_wrap(f"[cell {check.cell}] {record.get('summary', '')}")]
    if not check.judged:
        lines.append(
            f"{INDENT}(not judged: the check in cell {check.superseded_by} checks the same functions)"
        )
    if record.get("functions"):
        lines.append(_wrap(f"{INDENT}checked: {record['functions']}", INDENT * 2))
    changed = report.changed_settings(check)
    if changed:
        lines.append(_wrap(f"{INDENT}settings this notebook set: {_settings_text(changed)}", INDENT * 2))
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
    header = ("block", "shape", "rel_error", "status")
    widths = [max(len(r[i]) for r in rows + [header + ("",)]) for i in range(4)]
    used = len(INDENT) + sum(w + 2 for w in widths)
    note_width = WIDTH - used
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
            lines.extend(textwrap.wrap(note, WIDTH, initial_indent=INDENT * 2, subsequent_indent=INDENT * 2))
    lines.extend(_wrap(f"{INDENT}warning: {w}", INDENT * 2) for w in record.get("warnings", []))
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


def _setup_source(registry: str, nonce: str, imposed: dict | None) -> str:
    """The hidden first cell: starts the grading session before any of the notebook's code."""
    payload = json.dumps({"registry": registry, "nonce": nonce, "imposed": imposed})
    return (
        "import json as _gradcheck_json\n"
        "from gradcheck_magic import grading as _gradcheck_grading\n"
        f"_gradcheck_grading.start(**_gradcheck_json.loads({payload!r}))\n"
        "del _gradcheck_json, _gradcheck_grading\n"
    )


class SetupFailed(Exception):
    """The grading session could not be started in the kernel (gradcheck_magic not importable?)."""


def _cell_error(index: int, content: dict) -> str:
    message = str(content.get("evalue", "")).strip().splitlines()
    return f"cell {index} raised {content.get('ename', 'an error')}" + (f": {message[0]}" if message else "")


def run(path: Path, options) -> tuple:
    """Run one notebook in a fresh kernel: (the executed notebook or None, the report on its checks)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from traitlets.config import Config

    report = NotebookReport(
        printable(path),
        baseline=options.baseline,
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

    workdir = tempfile.mkdtemp(prefix="gradcheck-")
    registry = Path(workdir, "registry.jsonl")
    registry.touch(mode=0o600)
    nonce = secrets.token_hex(16)
    state = {"cell": 0, "read": 0, "deadline": math.inf}  # the clock starts once the kernel is ready

    def collect_new_records():
        """Records appended since the last cell, each credited to the cell that was running."""
        with open(registry, "rb") as f:
            f.seek(state["read"])
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next call
        state["read"] += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("nonce") == nonce:
                report.checks.append(Check(state["cell"], record))

    async def start_session(notebook):
        state["deadline"] = time.monotonic() + options.timeout
        msg_id = client.kc.execute(
            _setup_source(str(registry), nonce, options.imposed), silent=True, store_history=False
        )
        reply = await client.async_wait_for_reply(msg_id)
        content = (reply or {}).get("content", {})
        if content.get("status") != "ok":
            raise SetupFailed(
                f"gradcheck_magic could not start in kernel {kernel!r}: "
                f"{content.get('ename', 'no reply')}: {content.get('evalue', '')}"
            )

    def cell_starts(cell, cell_index):
        state["cell"] = cell_index + 1  # cells are counted from 1, as a person counts them

    def cell_ran(cell, cell_index, execute_reply):
        collect_new_records()
        content = (execute_reply or {}).get("content", {})
        expected = EXPECTED_ERROR_TAG in cell.get("metadata", {}).get("tags", [])
        if content.get("status") == "error" and not expected:
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
        resources={"metadata": {"path": os.fsdecode(os.fsencode(path.parent) or b".")}},
        # local sockets: no port on the network, and no "running over TCP without encryption" warning
        config=Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(workdir, "kernel")}}),
        on_notebook_start=start_session,
        on_cell_execute=cell_starts,
        on_cell_executed=cell_ran,
        log=quiet,
    )
    try:
        with open(os.path.join(workdir, "kernel.log"), "wb") as kernel_log:
            asyncio.run(client.async_execute(stdout=kernel_log, stderr=kernel_log))
    except CellTimeoutError:
        report.fatal = f"timed out after {options.timeout:g} s (in cell {state['cell']})"
    except DeadKernelError:
        report.fatal = f"the kernel died in cell {state['cell']} (out of memory, or the code exited?)"
    except CellExecutionError:
        pass  # the failing cell is in report.errors already
    except SetupFailed as exc:
        report.fatal = _first_line(str(exc))
    except Exception as exc:  # noqa: BLE001 - a notebook that cannot run is reported, not fatal
        report.fatal = _first_line(f"could not execute: {type(exc).__name__}: {exc}")
    finally:
        collect_new_records()
        shutil.rmtree(workdir, ignore_errors=True)
    judge(report.checks, options.every_check)
    report.seconds = time.monotonic() - started
    return nb, report


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
    def baseline(self) -> dict:
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


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradcheck-notebook",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Execute notebooks headless and grade the %%gradcheck checks they run: each notebook passes "
            "when the last check of each family (the same functions checked) passes. Exits 1 when a "
            "notebook fails, raises, times out or runs no check.",
            100,
        ),
        epilog="WARNING: " + textwrap.fill(SANDBOX_WARNING, 100),
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
        "%%gradcheck_config or a flag, is then ignored",
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
    cli = parser()
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
    out = sys.stdout
    if hasattr(out, "reconfigure"):
        out.reconfigure(errors="backslashreplace")  # a terminal or log that cannot show ✓ still gets the rest
    if not args.json and imposed is not None:
        changed = {k: v for k, v in imposed.items() if v != Options().baseline.get(k)}
        print(
            _wrap(f"settings imposed on every check: {_settings_text(changed) or 'the defaults'}"), file=out
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
        print(_wrap(f"== {report.path} =="), file=out)
        for check in report.checks:
            print(check_text(report, check) + "\n", file=out)
        print(report.summary(), file=out, flush=True)
    bad = [r for r in reports if not r.ok]
    if args.json:
        out.write("[\n" + ",\n".join(json.dumps(r.to_dict(), ensure_ascii=False) for r in reports) + "\n]\n")
    else:
        print(f"\n{len(reports)} notebook(s): {len(reports) - len(bad)} passed, {len(bad)} did not", file=out)
    return 0 if args.exit_zero or not bad else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
