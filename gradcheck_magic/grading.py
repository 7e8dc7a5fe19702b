"""The kernel side of the headless checker: each check is captured, and re-run by the grader's own copy.

``gradcheck-notebook`` loads a private copy of this package into the kernel before the notebook's first
cell (by path, under a private module name: not through ``sys.path``, so a folder next to the notebook
cannot stand in for it, and patching the public ``gradcheck_magic`` changes nothing it uses).  The public
package, whatever the notebook does to it, only hands each check's *inputs* to the private session
(:func:`capture`): the namespace, the flags, the names the cell assigned.  The session keeps a rewind
point (the namespace's bindings, the arrays, dicts, lists and objects' attributes it reaches, both
random states).  After the last cell it rewinds to each point in turn and re-runs the check with the
private copy (:meth:`Session.finish`); the evidence goes back to the checker as plain data, and the
checker process decides the verdicts.  Nothing the notebook writes is read as a result.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import math
import os
import pkgutil
import random
import re
import sys
import types

import numpy as np

from .settings import Settings

PUBLIC = "gradcheck_magic"
_OWN = __name__.partition(".")[0]  # this copy's own name (the private one, in a grading kernel)
FOLDER = os.path.dirname(os.path.abspath(__file__))  # the package this module was loaded from

# ---- the public side: the hook every check calls ----------------------------------------------------
_grader = None  # set on the public package by a grading session: the private Session.capture


def capture(namespace, **call) -> None:
    """Hand a check's inputs to the grading session, when one runs (``api.gradcheck`` calls this before
    anything else).  Outside a grading run it does nothing."""
    if _grader is not None:
        _grader(namespace, call)


# ---- the checker side: the code of the hidden cells ----------------------------------------------
def setup_source(folder: str, private: str) -> str:
    """The hidden first cell: load the package in ``folder`` as ``private`` (and pin the public name to
    the same files), with the notebook's folder off ``sys.path`` while it imports."""
    return (
        "def _gradcheck_setup(folder, private):\n"
        "    import importlib.util, os, sys\n"
        "    here = {'', os.getcwd()}\n"
        "    saved = list(sys.path)\n"
        "    sys.path[:] = [p for p in saved if p not in here]  # numpy & co. from the installation\n"
        "    try:\n"
        "        spec = importlib.util.spec_from_file_location(\n"
        "            private, os.path.join(folder, '__init__.py'), submodule_search_locations=[folder])\n"
        "        module = importlib.util.module_from_spec(spec)\n"
        "        sys.modules[private] = module\n"
        "        spec.loader.exec_module(module)\n"
        "        module.grading.start(private)\n"
        "    finally:\n"
        "        # the notebook's folder stays importable (its helpers), but after the installation\n"
        "        # (IPython 9 in safe-path mode leaves it off sys.path: it is put there in any case)\n"
        "        sys.path[:] = [p for p in sys.path if p not in here]\n"
        "        at = next((i for i, p in enumerate(sys.path) if os.path.basename(p) in\n"
        "                   ('site-packages', 'dist-packages')), len(sys.path))\n"
        "        sys.path[at:at] = [p for p in saved if p in here][:1] or [os.getcwd()]\n"
        f"_gradcheck_setup({folder!r}, {private!r})\n"
        "del _gradcheck_setup\n"
    )


def finish_expression(private: str, grader: dict, imposed: bool, rerun: bool = True) -> str:
    """The hidden last request's expression: the re-run's evidence, as a JSON string (``rerun`` False:
    only the list of the checks made, when the time is up)."""
    payload = json.dumps({"grader": grader, "imposed": imposed, "rerun": rerun})
    return f"__import__('sys').modules[{private!r}].grading.finish({payload!r})"


# ---- the private side: the session ---------------------------------------------------------------------
_session = None  # the private copy's Session (never set on the public package)


def start(private: str) -> None:
    """Called by the hidden first cell, in the private copy: import every module of the copy now (before
    the notebook can plant one), pin the public package to these files, and hook its checks."""
    for info in pkgutil.walk_packages([FOLDER], prefix=private + "."):
        if not info.name.endswith(("__main__", "notebook_cli")):
            importlib.import_module(info.name)
    global _session
    _session = Session()
    public = sys.modules.get(PUBLIC)
    if public is None or os.path.dirname(os.path.abspath(getattr(public, "__file__", "") or "")) != FOLDER:
        spec = importlib.util.spec_from_file_location(
            PUBLIC, os.path.join(FOLDER, "__init__.py"), submodule_search_locations=[FOLDER]
        )
        public = importlib.util.module_from_spec(spec)
        sys.modules[PUBLIC] = public
        spec.loader.exec_module(public)
    importlib.import_module(PUBLIC + ".grading")._grader = _session.capture


class Json(str):
    """JSON text that a user expression's reply carries as it is (its repr is itself, not a quoted
    string the checker would have to unquote: 10,000 checks make megabytes)."""

    def __repr__(self) -> str:
        return str(self)


def finish(payload: str) -> Json:
    """Called by the hidden last request: re-run every captured check; the evidence as JSON."""
    options = json.loads(payload)
    if not options["rerun"]:
        late = "the notebook ran out of time"
        return Json(json.dumps([{"count": c.count, "not_rerun": late} for c in _session.captures]))
    return Json(json.dumps(_session.finish(Settings(**options["grader"]), options["imposed"])))


#: What a notebook may choose for its own check and the re-run keeps (unless the grader imposes
#: settings): the step and the mode.  The thresholds are always the grader's.
STEP_AND_MODE = ("epsilon", "mode", "sample", "probes", "seed", "localize", "time_budget")


def coarse_step(epsilon, grader: Settings) -> bool:
    """A fixed step whose truncation error (about ε² of the gradient, at unit-scale curvature) could
    exceed the grader's pass line: agreement at such a step proves nothing at the grader's thresholds."""
    return epsilon is not None and epsilon * epsilon > grader.threshold


@dataclasses.dataclass
class Capture:
    """One check as the notebook asked for it: the execution count of its cell, its inputs, and the
    state to rewind to."""

    count: int
    namespace: dict
    call: dict
    rewind: Rewind | None  # None: the state could not be recorded (the re-run then says so)


class Session:
    """The private copy's record of the checks a notebook made."""

    def __init__(self):
        self.finishing = False  # a check the re-run itself triggers is not the notebook's
        self.captures: list = []
        # id(array) -> (array, its last copy), "rng" -> the random states: what has not changed since the
        # previous check is not copied again
        self.versions: dict = {}

    def capture(self, namespace, call: dict) -> None:
        if self.finishing:
            return
        count = running_count(_shell())
        if not isinstance(namespace, dict):
            namespace = dict(namespace or {})
        try:
            rewind = Rewind(namespace, self.versions)
        except Exception:  # noqa: BLE001 - a user object that cannot be read: the check still counts
            rewind = None
        self.captures.append(Capture(count, namespace, dict(call), rewind))

    def finish(self, grader: Settings, imposed: bool) -> list:
        """Rewind to each check and re-run it with this copy: its evidence, in the notebook's order."""
        self.finishing = True
        # each rewind rebinds names (``In`` to a copy of its length then): bind them back afterwards, so
        # that a live shell's history and names go on as before
        names = {id(c.namespace): (c.namespace, dict(c.namespace)) for c in self.captures}
        try:
            return [self._rerun(c, grader, imposed) for c in self.captures]
        finally:
            for namespace, bindings in names.values():
                namespace.clear()
                namespace.update(bindings)

    def _rerun(self, capture: Capture, grader: Settings, imposed: bool) -> dict:
        from .api import gradcheck
        from .settings import FIELDS, validated

        record = {"count": capture.count, "marks": []}
        overrides = {k: v for k, v in capture.call.items() if k in FIELDS}
        call = {k: v for k, v in capture.call.items() if k not in (*FIELDS, "settings", "progress")}
        try:
            own = validated(capture.call.get("settings"), **overrides)
        except Exception:  # noqa: BLE001 - the notebook's check was refused for it; the grader's run
            own = None
        record["notebook_settings"] = None if own is None else dataclasses.asdict(own)
        run = grader
        if not imposed and own is not None:
            run = dataclasses.replace(grader, **{k: getattr(own, k) for k in STEP_AND_MODE})
            if run.sample is not None:
                record["marks"].append(
                    f"the notebook's sample of {run.sample} entries per block cannot be re-judged: re-run "
                    "with every entry"
                )
                run = dataclasses.replace(run, sample=grader.sample)
            if coarse_step(run.epsilon, grader) and not coarse_step(grader.epsilon, grader):
                record["marks"].append(
                    f"the notebook's step ε={run.epsilon:g} is too coarse to judge at threshold "
                    f"{grader.threshold:g}: re-run with {_step(grader.epsilon)}"
                )
                run = dataclasses.replace(run, epsilon=grader.epsilon)
        elif run.sample is not None or coarse_step(run.epsilon, grader):
            record["marks"].append("the grader's own sample or step cannot be re-judged at its thresholds")
        if capture.rewind is None:
            record["marks"].append("the state at the check could not be recorded: re-run on the final state")
        while True:
            record["run_settings"] = dataclasses.asdict(run)
            if capture.rewind is not None:
                capture.rewind.apply()
            try:
                result = gradcheck(capture.namespace, settings=run, progress=None, **call)
            except (Exception, KeyboardInterrupt) as exc:
                record["error"] = _first_line(f"{type(exc).__name__}: {exc}")
                return record
            fine = _unverifiable(result)
            if not fine or run.epsilon == grader.epsilon or capture.rewind is None:
                break
            # the homework's own ε=1e-7 leaves round-off above the grader's pass line: such a block is
            # "unverifiable" at that step, not wrong, so it is judged at the grader's step instead
            record["marks"].append(
                f"the notebook's step ε={run.epsilon:g} is too fine to verify {', '.join(fine)} at threshold "
                f"{grader.threshold:g} (round-off): re-run with {_step(grader.epsilon)}"
            )
            run = dataclasses.replace(run, epsilon=grader.epsilon)
        record.update(evidence(result, capture.namespace))
        return record


def _unverifiable(result) -> list:
    """The blocks that warned because round-off at the step used was too coarse to verify them."""
    table = result.table
    return [
        str(name)
        for name, row in table.iterrows()
        if row["status"] == "warn" and "unverifiable" in row["note"]
    ]


def _step(epsilon) -> str:
    return "the automatic step" if epsilon is None else f"ε={epsilon:g}"


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


def running_count(shell) -> int:
    """The execution count of the cell now running (0 when there is none to be had).  IPython 8 moves
    the shell's counter on after a cell runs and IPython 9 before it, so the counter alone is off by
    one in one of them; the running cell's own ExecutionResult, which the shell hands its display
    hook while the cell runs, carries the cell's number in both."""
    running = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    count = getattr(running, "execution_count", None)
    if count is None:
        count = getattr(shell, "execution_count", 0)
    try:
        return int(count or 0)
    except (TypeError, ValueError):  # a count the notebook rebound: the check counts, its cell is 0
        return 0


def _shell():
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - the kernel always has IPython
        return None
    return get_ipython()


# ---- the evidence: plain data, judged by the checker process ---------------------------------------
def evidence(result, namespace: dict) -> dict:
    """What a re-run measured, as plain data: per block its figures and the engine's ``Evidence`` (which
    ``verdict`` decides from), with the step, the mode and the evaluation counts."""
    blocks = []
    for outcome, (name, row) in zip(result.outcomes, result.table.iterrows()):
        blocks.append(
            {
                "name": str(name),
                "shape": [int(n) for n in row["shape"]],
                "rel_error": _finite(row["rel_error"]),
                "max_abs_error": _finite(row["max_abs_error"]),
                "worst_index": _index(row["worst_index"]),
                "kernel_status": str(row["status"]),  # what the kernel said; the checker decides again
                "note": str(row["note"]),
                "suspect": str(row.get("suspect", "")),
                "evaluations": int(outcome.evaluations),
                "evidence": _evidence_of(outcome),
            }
        )
    return {
        "functions": result.functions,
        "family": family(result.functions, namespace, blocks),
        "mode": result.mode,
        "step": result.settings.epsilon,
        "evaluations": int(result.evaluations),
        "complete": not result.interrupted,
        "warnings": [str(w) for w in result.warnings],
        "blocks": blocks,
    }


def _evidence_of(outcome) -> dict:
    """The engine's evidence for a block; a block the engine never judged (not reached before an
    interruption) is incomplete."""
    ev = getattr(outcome, "evidence", None)
    if ev is None:
        return {"rel_error": float("nan"), "complete": False, "fatal": outcome.status == "fail"}
    return {k: (v if isinstance(v, float) else int(v)) for k, v in dataclasses.asdict(ev).items()}


def _index(value) -> list | None:
    """An entry's index as a list; None when the block has none (missing gradient, empty block)."""
    if isinstance(value, (tuple, list)):
        return [int(i) for i in value]
    return None if value is None or isinstance(value, float) else [int(value)]


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def family(description: str, namespace: dict, blocks: list) -> list:
    """What a check is *of*, for supersession: where each function it names is defined (module and
    qualified name, so a fixed redefinition is the same function and an unrelated object's method is
    not; a lambda also by the names its code calls), and its blocks' names and shapes."""
    defined = set()
    for dotted in dict.fromkeys(_NAME.findall(description or "")):
        function = _function(_lookup(namespace, dotted))
        if function is not None:
            where = f"{function.__module__}.{function.__qualname__}"
            if "<" in function.__qualname__:  # <lambda>, <locals>: the name alone says little
                where += "(" + ",".join(sorted(function.__code__.co_names)) + ")"
            defined.add(where)
    return sorted(defined) + [f"{b['name']}{tuple(b['shape'])}" for b in blocks]


def _lookup(namespace: dict, dotted: str):
    """``model.loss`` in the namespace, read without running properties or ``__getattr__``."""
    head, *rest = dotted.split(".")
    value = namespace.get(head)
    for part in rest:
        try:
            value = inspect.getattr_static(value, part)
        except AttributeError:
            return None
    return value


def _function(value):
    """The plain function behind a method, a static/class method or a ``functools.wraps`` wrapper."""
    if isinstance(value, (staticmethod, classmethod, types.MethodType)):
        value = value.__func__
    if isinstance(value, types.FunctionType):
        try:
            value = inspect.unwrap(value)
        except ValueError:  # a wrapper cycle
            pass
    return value if isinstance(value, types.FunctionType) else None


# ---- the rewind point ------------------------------------------------------------------------------------
#: Containers larger than this are not walked (a vocabulary, a dataset's list of images): what they hold
#: is kept as it is at the end of the notebook.
WALK_LIMIT = 10_000
#: How deep the walk goes from a variable: model.layers[0].params['W'] is 4.
WALK_DEPTH = 6
#: Objects of these packages (and the checker's own results) hold no student state worth rewinding.
FOREIGN = ("numpy", "pandas", "IPython", "ipykernel", "matplotlib", "scipy", "builtins", "torch", "PIL")
HISTORY = ("In", "_ih")
#: Values the walk does not enter: immutable scalars, and code (functions run as they are at the end).
OPAQUE = (
    str,
    bytes,
    int,
    float,
    complex,
    type,
    types.ModuleType,
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
)  # IPython's input history only grows: its length at the check is enough


class Rewind:
    """The state a check saw: every binding of the namespace, and what those reach (arrays' values, dicts'
    items, lists' items, objects' attributes), plus numpy's and Python's random states.  Applying it puts
    all of that back, so a check re-run after the last cell sees what it saw when it ran."""

    def __init__(self, namespace: dict, versions: dict):
        self.namespace = namespace
        # the checker's own results (``r = gradcheck(...)`` in a loop) are no state of the student's:
        # keeping them alive for every check would hold 10,000 result tables
        self.bindings = {k: v for k, v in namespace.items() if not _checkers(v)}
        self.history = {k: len(v) for k in HISTORY if isinstance(v := namespace.get(k), list)}
        self.rng = _shared_rng(versions)
        self.arrays: list = []  # (array, copy)
        self.dicts: list = []  # (dict, items)
        self.lists: list = []  # (list, items)
        self.objects: list = []  # (object, attributes)
        seen = set()
        for name, value in self.bindings.items():
            if not name.startswith("_") and name not in ("In", "Out", "exit", "quit", "get_ipython"):
                self._walk(value, versions, seen, WALK_DEPTH)

    def _walk(self, value, versions: dict, seen: set, depth: int) -> None:
        if depth < 0 or id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, np.ndarray):
            kept = versions.get(id(value))
            if kept is None or kept[0] is not value or not _same(value, kept[1]):
                kept = versions[id(value)] = (value, value.copy())
            self.arrays.append(kept)
            return
        if isinstance(value, OPAQUE):
            return
        if isinstance(value, dict):
            if len(value) <= WALK_LIMIT:
                items = list(value.items())
                self.dicts.append((value, items))
                for _, item in items:
                    self._walk(item, versions, seen, depth - 1)
        elif isinstance(value, (list, tuple)):
            if len(value) <= WALK_LIMIT:
                if isinstance(value, list):
                    self.lists.append((value, list(value)))
                for item in value:
                    self._walk(item, versions, seen, depth - 1)
        elif not _checkers(value) and _package(value) not in FOREIGN:
            attributes = getattr(value, "__dict__", None)
            if isinstance(attributes, dict) and len(attributes) <= WALK_LIMIT:
                items = list(attributes.items())
                self.objects.append((attributes, items))
                for _, item in items:
                    self._walk(item, versions, seen, depth - 1)

    def apply(self) -> None:
        """Put everything back as it was at the check (what cannot be put back stays as it is)."""
        self.namespace.clear()
        self.namespace.update(self.bindings)
        for name, length in self.history.items():
            self.namespace[name] = list(self.bindings[name][:length])
        for container, items in self.dicts + self.objects:
            try:
                container.clear()
                container.update(items)
            except Exception:  # noqa: BLE001, S110 - a mapping that refuses stays as it is
                pass
        for container, items in self.lists:
            container[:] = items
        for array, copy in self.arrays:
            try:
                if array.shape != copy.shape:
                    array.shape = copy.shape
                array[...] = copy
            except Exception:  # noqa: BLE001, S110 - a view reshaped for good, a read-only array
                pass
        np.random.set_state(self.rng[0])
        random.setstate(self.rng[1])


def _shared_rng(versions: dict) -> tuple:
    """numpy's and Python's random states now; the previous check's objects when unchanged (Python's
    state alone is 625 integers: 10,000 checks would hold a quarter of a gigabyte of copies)."""
    state = (np.random.get_state(), random.getstate())
    kept = versions.get("rng")
    if kept is not None and kept[1] == state[1] and _same_rng(kept[0], state[0]):
        return kept
    versions["rng"] = state
    return state


def _same_rng(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


def _package(value) -> str:
    return str(type(value).__module__).partition(".")[0]


def _checkers(value) -> bool:
    """An object of the checker's own (a result), from the public package or this copy."""
    return _package(value) in (PUBLIC, _OWN)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit the same values (NaNs included)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.hasobject:
        return False  # object arrays: always a fresh copy
    return bool(np.array_equal(_bytes(a), _bytes(b)))


def _bytes(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)
