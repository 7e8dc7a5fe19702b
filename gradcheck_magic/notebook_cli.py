"""``gradcheck-notebook``: execute notebooks headless, collect every %%gradcheck result.

For graders and CI: prints each result's table as text, a summary line per
notebook, and exits non-zero when any block fails or a notebook does not run.
Results are read from the JSON that ``GradCheckResult`` puts in its display bundle.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .result import MIME


@dataclass
class NotebookReport:
    path: str
    checks: list = field(default_factory=list)  # (cell index, result dict, text)
    error: Optional[str] = None
    seconds: float = 0.0

    @property
    def failed_blocks(self) -> list:
        return [b for _, r, _ in self.checks for b in r["failed"]]

    @property
    def status(self) -> str:
        if self.error:
            return "ERROR"
        if any(r["failed"] for _, r, _ in self.checks):
            return "FAIL"
        if any(not r["complete"] for _, r, _ in self.checks):
            return "INCOMPLETE"
        return "PASS" if self.checks else "NO CHECKS"

    def summary(self) -> str:
        failing = sum(1 for _, r, _ in self.checks if r["failed"])
        text = f"{self.path}: {self.status} — {len(self.checks)} check(s), {failing} failing"
        if self.failed_blocks:
            text += f" ({', '.join(self.failed_blocks)})"
        if self.error:
            text += f"; {self.error}"
        return text + f" [{self.seconds:.1f}s]"

    def to_dict(self) -> dict:
        return {"notebook": self.path, "status": self.status, "error": self.error,
                "seconds": round(self.seconds, 2),
                "checks": [dict(r, cell=i) for i, r, _ in self.checks]}


def collect(nb) -> list:
    """(cell index, result dict, text table) for every result displayed in an executed notebook."""
    found = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if MIME in data:
                payload = data[MIME]
                if isinstance(payload, str):
                    payload = json.loads(payload)
                found.append((index, payload, data.get("text/plain", payload.get("summary", ""))))
    return found


def first_error(nb) -> Optional[str]:
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"cell {index} raised {output.get('ename')}: {output.get('evalue')}"
    return None


def execute(path: Path, timeout: float, kernel: Optional[str] = None):
    """Run a notebook in a fresh kernel within ``timeout`` seconds; returns (nb, error)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(str(path), as_version=4)
    options = {"timeout": int(timeout), "resources": {"metadata": {"path": str(path.parent)}}}
    if kernel:
        options["kernel_name"] = kernel
    client = NotebookClient(nb, **options)
    error = None
    try:
        asyncio.run(asyncio.wait_for(client.async_execute(), timeout))
    except (asyncio.TimeoutError, TimeoutError):
        error = f"timed out after {timeout:g}s"
    except CellExecutionError:
        error = first_error(nb) or "a cell raised"
    except Exception as exc:  # noqa: BLE001 - a notebook that cannot run is reported, not fatal
        error = f"could not execute: {type(exc).__name__}: {exc}".splitlines()[0]
    return nb, error


def check_notebook(path: Path, timeout: float = 600, kernel: Optional[str] = None) -> NotebookReport:
    start = time.perf_counter()
    report = NotebookReport(str(path))
    try:
        nb, report.error = execute(path, timeout, kernel)
    except Exception as exc:  # noqa: BLE001 - unreadable file
        report.error = f"could not read: {type(exc).__name__}: {exc}".splitlines()[0]
    else:
        report.checks = collect(nb)
    report.seconds = time.perf_counter() - start
    return report


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="gradcheck-notebook",
        description="Execute notebooks headless and report every %%gradcheck result; exits 1 when a "
                    "block fails or a notebook does not run.")
    parser.add_argument("paths", nargs="+", help="notebooks, or folders searched for *.ipynb")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per notebook (default 600)")
    parser.add_argument("--kernel", help="kernel name (default: the notebook's own)")
    parser.add_argument("--exit-zero", action="store_true",
                        help="exit 0 even when blocks fail (report only, as for a demo)")
    args = parser.parse_args(argv)
    paths = notebooks(args.paths)
    if not paths:
        parser.error("no notebooks found in " + ", ".join(args.paths))
    reports = []
    for path in paths:
        if not path.exists():
            report = NotebookReport(str(path), error="no such file")
        else:
            report = check_notebook(path, args.timeout, args.kernel)
        reports.append(report)
        if not args.json:
            print(f"== {path} ==")
            for index, _, text in report.checks:
                print(f"[cell {index}] {text}\n")
            print(report.summary(), flush=True)
    bad = [r for r in reports if r.status in ("FAIL", "ERROR", "INCOMPLETE")]
    if args.json:
        json.dump([r.to_dict() for r in reports], sys.stdout, indent=2)
        print()
    else:
        print(f"\n{len(reports)} notebook(s): {len(reports) - len(bad)} passed, {len(bad)} failed or errored")
    return 0 if args.exit_zero or not bad else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
