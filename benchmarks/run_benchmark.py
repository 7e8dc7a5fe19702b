"""Speed of gradcheck_magic against the loops people write by hand, and how often it is right.

    python benchmarks/run_benchmark.py            # all sizes; writes benchmarks/results.md
    python benchmarks/run_benchmark.py 50 5k      # some sizes (timings and reliability), printed only
    python benchmarks/run_benchmark.py --quick    # smoke run: 3 seeds, sizes 50 and 5k, printed only
    python benchmarks/run_benchmark.py 500k --no-timing --modes=fast --seeds=20   # one reliability row set
    python benchmarks/run_benchmark.py dropout --jobs=2 --write   # the course's dropout net (~40 min)

For each seed-style net (~50, 5k, 50k, 500k parameters, m=32) it reports wall time and
forward evaluations of: the homework's gradient_check_n loop, a bare in-place loop (the
floor for full mode), and %gradcheck --mode full / --mode fast / --sample 20 through the
real magic in a real IPython shell.  A run estimated past LIMIT seconds is skipped and
its estimate printed instead.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import nets  # noqa: E402
import variants  # noqa: E402

LIMIT = 60.0  # seconds; longer runs are estimated, not run
SEEDS = 20  # nets per size and case in the reliability table
CASES = {  # name -> (hidden activation, keep_prob, planted bug)
    "correct ReLU": ("relu", 1.0, None),
    "correct tanh": ("tanh", 1.0, None),
    "correct dropout": ("relu", 0.8, None),
    "two-block bug": ("relu", 1.0, "two_block"),
    "one-entry bug": ("relu", 1.0, "one_entry"),
    "one-unit mask bug": ("relu", 1.0, "one_unit_mask"),
}
RELIABILITY_MODES = {
    "full": {"mode": "full"},
    "fast": {"mode": "fast"},
    "--sample 100": {"sample": 100},
    "auto": {},
}
FULL_UP_TO = 10_000  # full mode only on nets up to this many parameters (50k: 6 s a check)


def seconds_per_forward(X, Y, parameters, repeat=30) -> float:
    nets.forward_propagation_n(X, Y, parameters)
    start = time.perf_counter()
    for _ in range(repeat):
        nets.forward_propagation_n(X, Y, parameters)
    return (time.perf_counter() - start) / repeat


def timed(fn, repeat=5, quick=0.5):
    """Wall time of fn(); a quick run is repeated and the best kept (less scheduler noise)."""
    best, value = None, None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
        if elapsed > quick:
            break
    return best, value


def homework_loop(X, Y, parameters, n):
    """Run it, or time a prefix and extrapolate (its per-entry copy makes it quadratic)."""
    grads = nets.backward_propagation_n(X, Y, nets.forward_propagation_n(X, Y, parameters)[1])
    prefix = min(n, 200)
    t, _ = timed(lambda: nets.gradient_check_n(parameters, grads, X, Y, limit=prefix))
    estimate = t / prefix * n
    if estimate > LIMIT:
        return {"seconds": estimate, "evaluations": 2 * n, "estimated": True}
    t, _ = timed(lambda: nets.gradient_check_n(parameters, grads, X, Y))
    return {"seconds": t, "evaluations": 2 * n, "estimated": False}


def bare(X, Y, parameters, n, per_forward):
    estimate = 2 * n * per_forward
    if estimate > LIMIT:
        return {"seconds": estimate, "evaluations": 2 * n, "estimated": True}
    work = {k: v.copy() for k, v in parameters.items()}
    t, _ = timed(lambda: nets.bare_loop(work, X, Y))
    return {"seconds": t, "evaluations": 2 * n, "estimated": False}


def magic(shell, line, n=None, per_forward=None):
    if n is not None and 2 * n * per_forward > LIMIT:
        return {"seconds": 2 * n * per_forward, "evaluations": 2 * n, "estimated": True}
    runs = []
    t, _ = timed(
        lambda: runs.append(shell.run_line_magic("gradcheck", f"{line} -q -o --no-progress --no-widgets"))
    )
    result = runs[-1]
    assert result.passed and not result.warned, result
    return {
        "seconds": t,
        "sweep": min(r.sweep_seconds for r in runs),
        "evaluations": result.evaluations,
        "estimated": False,
    }


def fmt(run) -> str:
    if run is None:
        return "—"
    mark = "~" if run["estimated"] else ""
    return f"{mark}{run['seconds']:.3g} s / {run['evaluations']:,}"


def ratio(a, b) -> str:
    if a is None or b is None:
        return "—"
    mark = "~" if a["estimated"] or b["estimated"] else ""
    return f"{mark}{a['seconds'] / b['seconds']:.3g}×"


def main(sizes) -> str:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "gradcheck_magic")
    shell.user_ns.update(
        forward_propagation_n=nets.forward_propagation_n, backward_propagation_n=nets.backward_propagation_n
    )
    rows = []
    for size in sizes:
        X, Y, parameters = nets.make_net(size)
        n = nets.n_params(parameters)
        shell.user_ns.update(X=X, Y=Y, parameters=parameters)
        per_forward = seconds_per_forward(X, Y, parameters)
        print(f"{size}: {n:,} parameters, {per_forward * 1e6:.0f} µs per forward", flush=True)
        row = {
            "size": size,
            "n": n,
            "per_forward": per_forward,
            "homework": homework_loop(X, Y, parameters, n),
            "bare": bare(X, Y, parameters, n, per_forward),
            "full": magic(shell, "--mode full", n, per_forward),
            "fast": magic(shell, "--mode fast"),
            "sample": magic(shell, "--sample 20"),
        }
        rows.append(row)
        for key in ("homework", "bare", "full", "fast", "sample"):
            print(f"  {key:<9}{fmt(row[key])}", flush=True)
    return report(rows)


def reliability(sizes, seeds=SEEDS):
    """Per case, mode and size: how many of ``seeds`` nets got the right verdict.  Correct nets:
    failures (false alarms) and warnings; buggy ones: checks whose failed blocks are exactly the
    planted ones.  Each check goes through gradcheck() (the magic's one implementation)."""
    from gradcheck_magic import gradcheck

    table, seconds = {}, {}
    for size in sizes:
        for seed in range(seeds):
            X, Y, parameters = nets.make_net(size, seed=seed)
            n = nets.n_params(parameters)
            for case, (act, keep_prob, bug) in CASES.items():
                namespace = {
                    "X": X,
                    "Y": Y,
                    "parameters": parameters,
                    "act": act,
                    "keep_prob": keep_prob,
                    "bug": bug,
                    "forward_net": variants.forward_net,
                    "backward_net": variants.backward_net,
                }
                np.random.seed(seed)
                for mode, overrides in RELIABILITY_MODES.items():
                    if mode == "full" and n > FULL_UP_TO:
                        continue
                    start = time.perf_counter()
                    result = gradcheck(
                        namespace,
                        forward="forward_net",
                        backward="backward_net",
                        params="parameters",
                        **overrides,
                    )
                    seconds.setdefault((case, mode, size), []).append(time.perf_counter() - start)
                    cell = table.setdefault((case, mode, size), {"right": 0, "fail": 0, "warn": 0, "n": 0})
                    cell["n"] += 1
                    if bug is None:
                        cell["fail"] += bool(result.failed)
                        cell["warn"] += bool(result.warned)
                        cell["right"] += not result.failed
                    else:
                        cell["right"] += set(result.failed) == variants.BUGS[bug]
            print(f"  reliability {size}: seed {seed} done", flush=True)
    return table, seconds


def reliability_report(sizes, table, seconds, seeds=SEEDS) -> str:
    lines = [
        "",
        "## Reliability",
        "",
        f"{seeds} nets per size (seeds 0–{seeds - 1}; the seed draws the net, X, Y and the dropout masks), "
        "checked through `gradcheck()` with default settings. Correct nets: `fails / warns` (a fail is a "
        "false alarm). Buggy nets: checks whose failed blocks are exactly the planted ones. "
        f"Full mode (and auto's full) is run up to {FULL_UP_TO:,} parameters; `—` = not run. "
        "Median seconds per check in brackets.",
        "",
        "| case | mode | " + " | ".join(sizes) + " |",
        "|---|---|" + "---:|" * len(sizes),
    ]
    for case, (_, _, bug) in CASES.items():
        for mode in RELIABILITY_MODES:
            cells = []
            for size in sizes:
                cell = table.get((case, mode, size))
                if cell is None:
                    cells.append("—")
                    continue
                t = float(np.median(seconds[(case, mode, size)]))
                text = f"{cell['fail']} / {cell['warn']}" if bug is None else f"{cell['right']}/{cell['n']}"
                cells.append(f"{text} ({t:.2g} s)")
            lines.append(f"| {case} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: The course's dropout net (regularization homework, part 3) at issue 18's size: layers
#: 100-300-100-1 (60,501 parameters), m = 200, its own cells from tests/homework.
DROPOUT_LAYERS = (100, 300, 100, 1)
DROPOUT_M = 200
DROPOUT_BUG = ("    dA1 = dA1 / keep_prob\n", "")  # dA1 not rescaled: W1 and b1 wrong
DROPOUT_MODES = {"full": {"mode": "full"}, "--sample 100": {"sample": 100}, "auto": {}}
HOMEWORK = HERE.parent / "tests" / "homework"


def dropout_namespace(seed: int, bug: bool) -> dict:
    """The course's three_layer and dropout cells run in a fresh namespace, with a net initialised as
    the course does (W / sqrt(n_prev), zero biases) and X, Y drawn from ``seed``."""
    text = "\n".join((HOMEWORK / f"{name}.py").read_text() for name in ("three_layer", "dropout"))
    if bug:
        assert text.count(DROPOUT_BUG[0]) == 1
        text = text.replace(*DROPOUT_BUG)
    namespace = {"__name__": "__main__"}
    exec(compile(text, "<homework>", "exec"), namespace)
    rng = np.random.default_rng(seed)
    dims = DROPOUT_LAYERS
    for layer in range(1, len(dims)):
        namespace.setdefault("parameters", {})
        namespace["parameters"][f"W{layer}"] = rng.normal(size=dims[layer - 1 : layer + 1][::-1]) / np.sqrt(
            dims[layer - 1]
        )
        namespace["parameters"][f"b{layer}"] = np.zeros((dims[layer], 1))
    namespace["X"] = rng.normal(size=(dims[0], DROPOUT_M))
    namespace["Y"] = (rng.random((1, DROPOUT_M)) > 0.5).astype(int)
    return namespace


def dropout_check(job) -> tuple:
    """One seed's check (run in a worker process): (failed blocks, warned blocks, seconds)."""
    from gradcheck_magic import gradcheck

    seed, bug, overrides = job
    namespace = dropout_namespace(seed, bug)
    start = time.perf_counter()
    result = gradcheck(
        namespace,
        forward="forward_propagation_with_dropout",
        backward="backward_propagation_with_dropout",
        cost="compute_cost",
        params="parameters",
        **overrides,
    )
    return list(result.failed), list(result.warned), time.perf_counter() - start


def dropout_reliability(seeds=SEEDS, modes=DROPOUT_MODES, jobs=1, bug_in_full=False) -> str:
    """The course's dropout net checked as the homework's own cell names it (-f, -b, -c): correct code
    must pass cleanly on every seed, and a missing ``/ keep_prob`` must fail exactly W1 and b1.  Seeds
    run in ``jobs`` processes of one BLAS thread each (a full check is ~120k forward passes)."""
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the workers
    pool = concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
    lines = [
        "",
        "## Reliability: the course's dropout net",
        "",
        f"Layers {'-'.join(map(str, DROPOUT_LAYERS))} (60,501 parameters), m = {DROPOUT_M}, keep_prob 0.86, "
        "the course's own `forward_propagation_with_dropout` / `backward_propagation_with_dropout` / "
        f"`compute_cost`; seeds 0–{seeds - 1} draw the weights, X and Y. Correct code: `fails / warns` "
        "(a fail is a false alarm); the bug (`dA1 = dA1 / keep_prob` left out): checks failing exactly W1 "
        "and b1. Median seconds per check in brackets (one BLAS thread)."
        + (
            ""
            if bug_in_full
            else " The bug is not run in full mode (~1 h); `--sample 100` and auto catch it."
        ),
        "",
        "| case | " + " | ".join(modes) + " |",
        "|---|" + "---:|" * len(modes),
    ]
    with pool:
        for case, bug in (("correct", False), ("missing / keep_prob", True)):
            cells = []
            for mode, overrides in modes.items():
                if bug and mode == "full" and not bug_in_full:
                    cells.append("—")
                    continue
                runs = []
                for seed, run in enumerate(
                    pool.map(dropout_check, [(seed, bug, overrides) for seed in range(seeds)])
                ):
                    runs.append(run)
                    print(f"  dropout {case} {mode} seed {seed}: failed {run[0]} warned {run[1]}", flush=True)
                if bug:
                    text = f"{sum(set(f) == {'W1', 'b1'} for f, _, _ in runs)}/{seeds}"
                else:
                    text = f"{sum(bool(f) for f, _, _ in runs)} / {sum(bool(w) for _, w, _ in runs)}"
                cells.append(f"{text} ({float(np.median([t for _, _, t in runs])):.2g} s)")
                print(f"  dropout {case} {mode}: {text}", flush=True)
            lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report(rows) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"numpy {np.__version__}. Seed-style 3-layer ReLU/sigmoid nets, m = {nets.M}. "
        f"Cells read `wall time / forward evaluations` (best of 5 for runs under 0.5 s); `~` marks "
        f"an estimate for a run that would take over {LIMIT:.0f} s (not run).",
        "",
        "| net | params | µs/forward | homework loop | bare in-place loop | `--mode full` | `--mode fast` | `--sample 20` |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['n']:,} | {r['per_forward'] * 1e6:.0f} | {fmt(r['homework'])} | "
            f"{fmt(r['bare'])} | {fmt(r['full'])} | {fmt(r['fast'])} | {fmt(r['sample'])} |"
        )
    lines += [
        "",
        "Ratios (time): full ÷ bare loop is the magic's overhead, end to end and for the engine's "
        "sweep alone; fast ÷ full in evaluations and in time.",
        "",
        "| net | full ÷ bare (end to end) | full ÷ bare (sweep) | full ÷ homework | fast ÷ full (evaluations) | fast ÷ full (time) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        full, bare_, fast = r["full"], r["bare"], r["fast"]
        sweep = "—" if full["estimated"] or bare_["estimated"] else f"{full['sweep'] / bare_['seconds']:.3g}×"
        # both estimated as 2N forward passes: their ratio would say nothing
        end_to_end = "—" if full["estimated"] and bare_["estimated"] else ratio(full, bare_)
        lines.append(
            f"| {r['size']} | {end_to_end} | {sweep} | {ratio(full, r['homework'])} | "
            f"1/{full['evaluations'] / fast['evaluations']:,.0f} | {ratio(fast, full)} |"
        )
    return "\n".join(lines) + "\n"


def parse(args):
    """Sizes, plus options: --quick (3 seeds of 50 and 5k), --seeds=N, --modes=fast,auto (reliability
    modes), --no-timing (the reliability table alone), --full-up-to=N (run full mode on nets of up to
    N parameters; 60000 takes the 50k net, about 7 s a check).  With no sizes and no option but
    --full-up-to, the whole benchmark runs and writes results.md."""
    options = {a.split("=")[0]: a.partition("=")[2] for a in args if a.startswith("--")}
    sizes = [a for a in args if not a.startswith("--")]
    quick = "--quick" in options
    sizes = sizes or (["50", "5k"] if quick else list(nets.SIZES))
    seeds = int(options.get("--seeds") or (3 if quick else SEEDS))
    modes = options.get("--modes")
    names = [k.lstrip("-").split()[0] for k in RELIABILITY_MODES]
    global FULL_UP_TO
    FULL_UP_TO = int(options.get("--full-up-to") or FULL_UP_TO)
    return sizes, seeds, modes.split(",") if modes else names, "--no-timing" in options


def write_section(text: str) -> None:
    """Put a ``## `` section into results.md, replacing the section of the same title."""
    path = HERE / "results.md"
    title = next(line for line in text.splitlines() if line.startswith("## "))
    parts = path.read_text(encoding="utf-8").split("\n## ")
    kept = [part for part in parts[1:] if "## " + part.splitlines()[0] != title]
    body = "\n## ".join([parts[0].rstrip("\n") + "\n", *kept]).rstrip("\n") + "\n"
    path.write_text(body + "\n" + text.lstrip("\n"), encoding="utf-8")


# ---- peak memory (--memory) ---------------------------------------------------------------------
#: Nets of the memory table: the benchmark's 50k net and a 5M one (W1 is 4M entries, 32 MB).
MEMORY_SIZES = {"50k": nets.SIZES["50k"], "5M": (2000, 2000, 500)}
#: At 5M, full mode and the loops stop after this many forward evaluations (the peak until then).
MEMORY_STOP = 200
#: At 50k the loops stop after this many (their arrays are all made by then, but for the bare loop's
#: numeric arrays of the blocks after W1, 0.2x the parameters): a complete loop under tracemalloc
#: takes minutes, and their memory does not grow with the evaluations.
MEMORY_LOOP_STOP = 2000
MEMORY_CASES = ["--mode full", "--mode fast", "--sample 20", "bare in-place loop", "homework loop"]
MEMORY_HEADER = "## Peak memory"


def _rss_kb() -> dict:
    with open("/proc/self/status") as f:
        return {
            k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f) if k in ("VmRSS", "VmHWM")
        }


class _Meter:
    """Peak extra memory above ``start()``: tracemalloc's traced peak, or the growth of the resident set
    (VmHWM, its high-water mark, reset through /proc/self/clear_refs) above VmRSS at the start."""

    def __init__(self, how: str):
        self.how, self.base, self.peak = how, 0, None

    def start(self) -> None:
        import gc
        import tracemalloc

        gc.collect()
        if self.how == "tracemalloc":
            tracemalloc.start()
            self.base = tracemalloc.get_traced_memory()[0]
        else:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.base = _rss_kb()["VmRSS"] * 1024

    def read(self) -> int:
        import tracemalloc

        if self.how == "tracemalloc":
            return tracemalloc.get_traced_memory()[1] - self.base
        return _rss_kb()["VmHWM"] * 1024 - self.base

    def stop(self) -> int:
        return self.peak if self.peak is not None else self.read()


def _stopping(forward, meter: _Meter, limit):
    """The forward, stopped (KeyboardInterrupt, as Ctrl-C) after ``limit`` calls; the peak is read then.
    Its state is kept in a module object, which the check's snapshot does not walk (it would put the
    count and the peak back)."""
    import types

    state = types.ModuleType("memory_meter")
    state.calls, state.meter = 0, meter

    def forward_propagation_n(X, Y, parameters):
        state.calls += 1
        if limit is not None and state.calls > limit and state.meter.peak is None:
            state.meter.peak = state.meter.read()
            raise KeyboardInterrupt
        return forward(X, Y, parameters)

    return forward_propagation_n, state


def memory_child(size: str, case: str, how: str) -> dict:
    """One measurement, in a fresh process: peak extra memory of one check (or loop) on a new net."""
    nets.SIZES[size] = MEMORY_SIZES.get(size) or nets.SIZES[size]
    X, Y, parameters = nets.make_net(size)
    parameter_bytes = sum(v.nbytes for v in parameters.values())
    limit = (
        MEMORY_STOP
        if size == "5M" and case in ("--mode full", "bare in-place loop", "homework loop")
        else None
    )
    if size == "50k" and case in ("bare in-place loop", "homework loop"):
        limit = MEMORY_LOOP_STOP
    meter = _Meter(how)
    forward = nets.forward_propagation_n
    counted, calls = _stopping(forward, meter, limit)
    if case.startswith("--"):
        import inspect

        from IPython.testing.globalipapp import start_ipython

        shell = start_ipython()
        shell.run_line_magic("load_ext", "gradcheck_magic")
        shell.run_line_magic("gradcheck_config", "--reset widgets=false progress=false")
        shell.run_cell(inspect.getsource(nets))
        line = f"-o -q --no-progress --no-widgets -f forward_propagation_n -b backward_propagation_n {case}"
        shell.user_ns["X"], shell.user_ns["Y"], shell.user_ns["parameters"] = shell.user_ns["make_net"]("50")
        shell.run_line_magic("gradcheck", line)  # warm-up: imports and caches are not counted
        user_forward = shell.user_ns["forward_propagation_n"]
        counted, calls = _stopping(user_forward, meter, limit)
        shell.user_ns.update(X=X, Y=Y, parameters=parameters, forward_propagation_n=counted)
        del X, Y, parameters
        meter.start()
        result = shell.run_line_magic("gradcheck", line)
        peak = meter.stop()
        outcome = "interrupted" if result.interrupted else ("passed" if result.passed else "failed")
        evaluations = result.evaluations
    else:
        nets.gradient_check_n(*_loop_inputs("50"), limit=10)  # warm-up
        nets.forward_propagation_n = counted  # the loops call it through the module's globals
        meter.start()
        try:
            grads = nets.backward_propagation_n(X, Y, forward(X, Y, parameters)[1])
            if case == "bare in-place loop":
                nets.bare_loop(parameters, X, Y)
            else:
                nets.gradient_check_n(parameters, grads, X, Y)
            outcome = "done"
        except KeyboardInterrupt:
            outcome = "interrupted"
        peak = meter.stop()
        nets.forward_propagation_n = forward
        evaluations = calls.calls - (1 if outcome == "interrupted" else 0)
    return {"peak": peak, "parameter_bytes": parameter_bytes, "outcome": outcome, "evaluations": evaluations}


def _loop_inputs(size: str):
    X, Y, parameters = nets.make_net(size)
    grads = nets.backward_propagation_n(X, Y, nets.forward_propagation_n(X, Y, parameters)[1])
    return parameters, grads, X, Y


def memory(sizes=tuple(MEMORY_SIZES)) -> list:
    """Every (size, case, tracemalloc | RSS), each in a fresh subprocess so that runs do not pollute
    each other's heap or high-water mark."""
    import json
    import subprocess

    rows = []
    for size in sizes:
        for case in MEMORY_CASES:
            row = {"size": size, "case": case}
            for how in ("tracemalloc", "rss"):
                code = (
                    f"import json, sys; sys.argv = ['x']; sys.path.insert(0, {str(HERE)!r}); "
                    "import run_benchmark as b; "
                    f"print('RESULT', json.dumps(b.memory_child({size!r}, {case!r}, {how!r})))"
                )
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, check=True
                )
                line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
                row[how] = json.loads(line[len("RESULT ") :])
                row[how]["seconds"] = time.perf_counter() - started
                print(size, case, how, row[how], flush=True)
            rows.append(row)
    return rows


def memory_report(rows) -> str:
    """The "## Peak memory" section."""
    lines = [
        MEMORY_HEADER,
        "",
        "Peak memory of one check above the memory before it, as a multiple of the parameters' bytes "
        "(`× params`) and in MB, measured two ways, each in a fresh process: tracemalloc (what Python "
        "and numpy allocate) and the growth of the resident set (peak RSS, `VmHWM` reset through "
        "`/proc/self/clear_refs`, above `VmRSS` at the start).  Everything the check does is counted: "
        "the snapshot of the user's arrays, the forward and backward passes (their activations and "
        "caches grow with m = 32, not with the parameters), the analytic gradient, the outcome arrays "
        "and the table.  The loops are measured from their forward and backward pass on.  A warm-up "
        "check on the 50-parameter net comes first, so imports and caches are not counted.  "
        f"At 5M, `--mode full` and the loops are stopped after {MEMORY_STOP} forward evaluations "
        "(as by Ctrl-C) and the peak until then is shown: it covers the snapshot, the gradient and the "
        "sweep's arrays, not the judging after a complete sweep.  At 50k the loops are stopped after "
        f"{MEMORY_LOOP_STOP:,} (all their arrays are made by then, but the bare loop's numeric arrays "
        "of the blocks after W1, 0.2× the parameters).  `--mode full` at 50k runs to the end.  "
        "tests/test_memory.py measures a first check the same way (fast at 50k and 200k within 3×, full "
        "at 5k within 10×).  What the check holds: the snapshot of the user's arrays (one copy), the "
        "gradient the user's backward returns (one) and, in full mode, the numeric values and their "
        "round-off (one each); the backward's own temporaries come and go with it.  The activations, "
        "the probe directions (bits) and the judging (a chunk at a time) add nothing the size of a block.",
        "",
        "| net | params (MB) | case | tracemalloc | RSS | evaluations | |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        t, m = r["tracemalloc"], r["rss"]
        pb = t["parameter_bytes"]
        stopped = "stopped" if t["outcome"] == "interrupted" else t["outcome"]
        lines.append(
            f"| {r['size']} | {pb / 1e6:.2f} | {r['case']} | {t['peak'] / pb:.2f}× ({t['peak'] / 1e6:.1f} MB) | "
            f"{m['peak'] / pb:.2f}× ({m['peak'] / 1e6:.1f} MB) | {t['evaluations']:,} | {stopped} |"
        )
    return "\n".join(lines) + "\n"


def memory_main(args) -> None:
    """python benchmarks/run_benchmark.py --memory [--write] [50k] [5M]"""
    sizes = [a for a in args if not a.startswith("--")] or list(MEMORY_SIZES)
    text = memory_report(memory(sizes))
    print()
    print(text)
    if "--write" in args:
        write_section(text)


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--memory" in args:
        memory_main(args)
        sys.exit()
    if "dropout" in args:  # the course's dropout net alone: --seeds=N, --modes=full,sample, --write
        jobs = int(next((a.partition("=")[2] for a in args if a.startswith("--jobs=")), 1))
        rest = [a for a in args if a not in ("dropout", "--write") and not a.startswith("--jobs=")]
        chosen, seeds, modes, _ = parse(rest)
        chosen_modes = {k: v for k, v in DROPOUT_MODES.items() if k.lstrip("-").split()[0] in modes}
        text = dropout_reliability(seeds, chosen_modes, jobs)
        print(text)
        if "--write" in args:
            write_section(text)
        sys.exit()
    chosen, seeds, modes, no_timing = parse(args)
    RELIABILITY_MODES = {k: v for k, v in RELIABILITY_MODES.items() if k.lstrip("-").split()[0] in modes}
    text = "" if no_timing else main(chosen)
    table, seconds = reliability(chosen, seeds)
    text += reliability_report(chosen, table, seconds, seeds)
    whole = all(a.startswith("--full-up-to") for a in args)
    if whole:
        text += dropout_reliability(seeds, jobs=2) + "\n" + memory_report(memory())
    print()
    print(text)
    if whole:  # the whole benchmark
        (HERE / "results.md").write_text(text, encoding="utf-8")
