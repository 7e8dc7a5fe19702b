"""The IPython front end: ``%%gradcheck`` / ``%gradcheck`` and ``%gradcheck_config``.

Thin by design: parse options (``magic_arguments``), run the cell, call
:func:`gradcheck_magic.api.gradcheck`, display the result.  The defaults are
traitlets on the ``GradCheck`` class, so ``%config GradCheck.epsilon = 1e-6`` and
``ipython_config.py`` work as they do for storemagic.
"""
from __future__ import annotations

import ast
import sys

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, CaselessStrEnum, Float, Int, TraitError, validate

from .api import gradcheck
from .engine import MODES, Settings
from .errors import GradCheckError, describe_failure
from .progress import progress_factory

CONFIG_KEYS = ("epsilon", "threshold", "fail_threshold", "mode", "sample", "probes", "seed",
               "time_budget", "widgets", "progress", "raise_on_fail")


class GradCheckFailed(AssertionError):
    """Raised by ``--raise-on-fail`` (or the config key) so that notebooks fail loudly in CI."""


@magics_class
class GradCheck(Magics):
    """Gradient checking for hand-written backpropagation."""

    epsilon = Float(None, allow_none=True, help=(
        "Absolute step θ±ε of the central difference.  None (the default) chooses the step per "
        "entry: cbrt(machine eps)·max(|θ|, 1).")).tag(config=True)
    threshold = Float(1e-7, help="Largest relative error that passes; above it a block warns.").tag(config=True)
    fail_threshold = Float(1e-5, help="Above this relative error a block fails.").tag(config=True)
    mode = CaselessStrEnum(MODES, default_value="auto", help=(
        "full: every entry; fast: random directional derivatives per block; auto: full when it "
        "should finish within time_budget, else fast.")).tag(config=True)
    sample = Int(0, help="When > 0, full differences on this many random entries per block.").tag(config=True)
    probes = Int(4, help="Random directions per block in fast mode.").tag(config=True)
    seed = Int(0, help="Seed of the directions and samples, so that runs repeat.").tag(config=True)
    time_budget = Float(1.0, help="Seconds a full check may take before auto picks fast mode.").tag(config=True)
    widgets = Bool(True, help="Show the ipywidgets drill-down under the table in notebooks.").tag(config=True)
    progress = Bool(True, help="Show a progress bar for checks expected to take over a second.").tag(config=True)
    raise_on_fail = Bool(False, help="Raise GradCheckFailed when a block fails (for CI).").tag(config=True)

    @validate("epsilon")
    def _check_epsilon(self, proposal):
        value = proposal["value"]
        if value is not None and not value > 0:
            raise TraitError(f"epsilon must be a positive number (or auto), not {value}")
        return value

    @validate("threshold", "fail_threshold", "time_budget")
    def _check_positive(self, proposal):
        value = proposal["value"]
        if not value > 0:
            raise TraitError(f"{proposal['trait'].name} must be a positive number, not {value}")
        return value

    @validate("sample", "probes")
    def _check_count(self, proposal):
        value = proposal["value"]
        if value < 0 or (proposal["trait"].name == "probes" and value == 0):
            raise TraitError(f"{proposal['trait'].name} must be a positive whole number, not {value}")
        return value

    # ---- %%gradcheck ---------------------------------------------------------------
    def settings(self, args=None) -> Settings:
        s = Settings(epsilon=self.epsilon, threshold=self.threshold, fail_threshold=self.fail_threshold,
                     mode=self.mode, sample=self.sample or None, probes=self.probes, seed=self.seed,
                     time_budget=self.time_budget)
        if args is not None:
            for key in ("epsilon", "threshold", "mode", "sample", "probes", "seed"):
                value = getattr(args, key)
                if value is not None:
                    setattr(s, key, value)
            if s.epsilon is not None and not s.epsilon > 0:
                raise UsageError(f"-e/--epsilon must be positive, not {s.epsilon}")
            if not s.threshold > 0:
                raise UsageError(f"-t/--threshold must be positive, not {s.threshold}")
            if s.sample is not None and s.sample <= 0:
                raise UsageError(f"-s/--sample must be a positive whole number, not {s.sample}")
            s.fail_threshold = max(s.fail_threshold, s.threshold)
        return s

    @magic_arguments()
    @argument("-f", "--forward", metavar="NAME", help="forward function: returns the cost, or (output, cache) / (cost, cache)")
    @argument("-b", "--backward", metavar="NAME", help="backward function: returns a dict of gradients (dW1 for W1), or the gradient of a single parameter")
    @argument("-c", "--cost", metavar="NAME", help="cost function applied to the forward's first output, when the forward does not return the cost")
    @argument("-p", "--params", metavar="NAME", help="the parameters: a dict of arrays (each key a block) or a single scalar/array variable")
    @argument("-e", "--epsilon", type=float, metavar="FLOAT", help="exact absolute step θ±ε for this run (default: the configured value; auto per entry)")
    @argument("-t", "--threshold", type=float, metavar="FLOAT", help="largest relative error that passes, for this run")
    @argument("-m", "--mode", choices=MODES, help="full: every entry; fast: random directions per block; auto: full if quick, else fast")
    @argument("-s", "--sample", type=int, metavar="K", help="full differences on K random entries per block")
    @argument("--probes", type=int, metavar="N", help="random directions per block in fast mode")
    @argument("--seed", type=int, help="seed of the directions and samples")
    @argument("-o", "--output", action="store_true", help="return the GradCheckResult (Out shows it; it is not displayed twice)")
    @argument("-q", "--quiet", action="store_true", help="do not display the result (use with -o)")
    @argument("--no-widgets", action="store_true", help="no ipywidgets drill-down under the table")
    @argument("--no-progress", action="store_true", help="no progress bar")
    @argument("--raise-on-fail", action="store_true", help="raise GradCheckFailed when a block fails (for CI)")
    @argument("object", nargs="?", metavar="OBJECT", help="a model or layer object to check: %%gradcheck model, %%gradcheck dense1")
    @line_cell_magic
    def gradcheck(self, line: str = "", cell: str = None):
        """Check the backward pass against central differences, per parameter block.

        As a cell magic, runs the cell first.  Without flags the forward, backward,
        cost and parameters are found in the namespace.
        """
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame in tracebacks
        args = parse_argstring(self.gradcheck, line)
        settings = self.settings(args)
        assigned = self._run_cell(cell) if cell is not None and cell.strip() else set()
        progress = progress_factory(self.progress and not args.no_progress, settings=settings)
        try:
            result = gradcheck(self.shell.user_ns, forward=args.forward, backward=args.backward,
                               cost=args.cost, params=args.params, settings=settings, progress=progress,
                               prefer=assigned, target=args.object)
        except GradCheckError as exc:
            raise UsageError(str(exc)) from None
        except BaseException as exc:
            if hasattr(exc, "_gradcheck_call"):
                print(describe_failure(exc, getattr(exc, "_gradcheck_where", "")), file=sys.stderr)
            raise
        if not args.quiet and not args.output:
            from IPython.display import display
            display(result)
        if self.widgets and not args.no_widgets and not args.quiet and not args.output:
            # with -o the caller owns the result: result.drilldown() gives the widget
            from .widgets import show_drilldown
            show_drilldown(result, self.shell)
        if (self.raise_on_fail or args.raise_on_fail) and not result.passed:
            raise GradCheckFailed(f"gradient check failed: {', '.join(result.failed)}")
        return result if args.output else None

    def _run_cell(self, cell: str) -> set:
        """Run the body like a normal cell (magics inside work); its errors propagate.
        Returns the names it assigns: discovery prefers them as the parameters."""
        __tracebackhide__ = True  # noqa: F841
        source = self.shell.transform_cell(cell)
        filename = self.shell.compile.cache(source, self.shell.execution_count, raw_code=cell)
        tree = self.shell.compile.ast_parse(source, filename=filename)
        exec(self.shell.compile(tree, filename, "exec"), self.shell.user_ns)
        return {node.id for node in ast.walk(tree)
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}

    # ---- %gradcheck_config -----------------------------------------------------------------
    @line_magic
    def gradcheck_config(self, line: str = ""):
        """Show or set the defaults of later checks: ``%gradcheck_config epsilon=1e-7 threshold=2e-7``.

        Bare, it shows the settings; ``--reset`` restores the defaults.  Keys:
        epsilon (a number or auto), threshold, fail_threshold, mode (auto/full/fast),
        sample, probes, seed, time_budget, widgets, progress, raise_on_fail.
        Also settable as ``%config GradCheck.<key> = value``.
        """
        tokens = line.split()
        if tokens and tokens[0] == "--reset":
            for key in CONFIG_KEYS:
                setattr(self, key, self.traits()[key].default())
            tokens = tokens[1:]
        if not tokens:
            print(self.describe())
            return
        updates = {}
        for token in tokens:
            key, sep, raw = token.partition("=")
            if not sep:
                raise UsageError(f"expected key=value, got {token!r} (keys: {', '.join(CONFIG_KEYS)})")
            if key not in CONFIG_KEYS:
                raise UsageError(f"unknown key {key!r}; keys: {', '.join(CONFIG_KEYS)}")
            updates[key] = self._parse(key, raw)
        before = {k: getattr(self, k) for k in updates}
        try:
            for key, value in updates.items():
                setattr(self, key, value)
            if self.threshold > self.fail_threshold:
                raise TraitError(f"threshold ({self.threshold:g}) must not exceed fail_threshold "
                                 f"({self.fail_threshold:g})")
        except TraitError as exc:
            for key, value in before.items():
                setattr(self, key, value)
            raise UsageError(f"%gradcheck_config: {exc}") from None

    def _parse(self, key: str, raw: str):
        trait = self.traits()[key]
        low = raw.strip().lower()
        try:
            if isinstance(trait, Bool):
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if key == "epsilon" and low in ("auto", "none"):
                return None
            if isinstance(trait, Int):
                return int(raw)
            if isinstance(trait, Float):
                return float(raw)
            return low
        except ValueError:
            raise UsageError(f"%gradcheck_config: {key}={raw!r} is not a valid "
                             f"{type(trait).__name__.lower()}") from None

    def describe(self) -> str:
        lines = ["gradcheck settings (%gradcheck_config key=value; --reset for defaults):"]
        for key in CONFIG_KEYS:
            value = getattr(self, key)
            shown = "auto (per-entry step)" if key == "epsilon" and value is None else value
            lines.append(f"  {key:<15}{shown}")
        return "\n".join(lines)
