"""The IPython front end: ``%%gradcheck`` / ``%gradcheck`` and ``%gradcheck_config``.

Thin by design: parse options (``magic_arguments``), run the cell, call
:func:`gradcheck_magic.api.gradcheck`, display the result.  The defaults are
traitlets on the ``GradCheck`` class, so ``%config GradCheck.epsilon = 1e-6`` and
``ipython_config.py`` work as they do for storemagic.
"""

from __future__ import annotations

import shlex
import sys

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, CaselessStrEnum, Float, Int, TraitError, observe, validate
from traitlets.config import Config

from .api import gradcheck
from .errors import GradCheckError, describe_failure
from .grading import running_count
from .plan.cell import CellFacts
from .progress import progress_factory
from .settings import FIELDS, MODES, Settings, check_pair, check_value, suggest, validated

CONFIG_KEYS = (
    "epsilon",
    "threshold",
    "fail_threshold",
    "mode",
    "sample",
    "probes",
    "seed",
    "time_budget",
    "widgets",
    "progress",
    "raise_on_fail",
    "watch",
)
#: The traits that are fields of Settings (checked by the settings validation); the rest are display switches.
SETTING_TRAITS = tuple(key for key in CONFIG_KEYS if key in FIELDS)
#: The settings a flag of the magic line can override for one run.
FLAG_SETTINGS = ("epsilon", "threshold", "mode", "sample", "probes", "seed")


class GradCheckFailed(AssertionError):
    """Raised by ``--raise-on-fail`` (or the config key) so that notebooks fail loudly in CI."""

    def _render_traceback_(self) -> list:
        """IPython shows the verdict, not this package's frame (the table above says the rest)."""
        return [f"GradCheckFailed: {self}"]


@magics_class
class GradCheck(Magics):
    """Gradient checking for hand-written backpropagation."""

    epsilon = Float(
        None,
        allow_none=True,
        help=(
            "Absolute step θ±ε of the central difference.  None (the default) chooses the step per "
            "entry: cbrt(machine eps)·max(|θ|, 1)."
        ),
    ).tag(config=True)
    threshold = Float(1e-7, help="Largest relative error that passes; above it a block warns.").tag(
        config=True
    )
    fail_threshold = Float(1e-5, help="Above this relative error a block fails.").tag(config=True)
    mode = CaselessStrEnum(
        MODES,
        default_value="auto",
        help=(
            "full: every entry; fast: random directional derivatives per block; auto: full up to "
            "2,000 evaluations or time_budget x 20,000 (a count, never a clock), else fast."
        ),
    ).tag(config=True)
    sample = Int(0, help="When > 0, full differences on this many random entries per block.").tag(config=True)
    probes = Int(4, help="Random directions per block in fast mode.").tag(config=True)
    seed = Int(0, help="Seed of the directions and samples, so that runs repeat.").tag(config=True)
    time_budget = Float(1.0, help="Nominal seconds of full mode (20,000 evaluations a second) for auto.").tag(
        config=True
    )
    widgets = Bool(
        False,
        help="Add the ipywidgets block picker under the (static) drill-down in notebooks.  Off by default:"
        " the drill-down's sections already pick a block, and a widget's view saved in a notebook shows"
        " ipywidgets' 'Error displaying widget: model not found' once the kernel is gone.",
    ).tag(config=True)
    progress = Bool(True, help="Show a progress bar for checks expected to take over a second.").tag(
        config=True
    )
    raise_on_fail = Bool(False, help="Raise GradCheckFailed when a block fails (for CI).").tag(config=True)
    watch = Bool(
        False,
        help="Re-run the last check (fast mode unless a mode is set) whenever a cell redefines a "
        "function it checked, updating its table in place.",
    ).tag(config=True)

    @observe("watch")
    def _watch_switched(self, change):
        """Watching off (``--watch off``, ``%gradcheck_config watch=off``): unhook, say so in one line."""
        if not change["new"] and self._watching is not None:
            self._watching.stop()
            self._watching = None

    @validate(*SETTING_TRAITS)
    def _check_setting(self, proposal):
        """Every trait value, however it is set, goes through the one settings validation."""
        key, value = proposal["trait"].name, proposal["value"]
        try:
            value = check_value(key, value)
            if key in ("threshold", "fail_threshold"):
                other = "fail_threshold" if key == "threshold" else "threshold"
                pair = {key: value, other: getattr(self, other)}
                check_pair(pair["threshold"], pair["fail_threshold"])
        except GradCheckError as exc:
            raise TraitError(str(exc)) from None
        return 0 if key == "sample" and value is None else value

    def _load_config(self, cfg, section_names=None, traits=None):
        """Apply config values one key at a time.  At load (``%reload_ext``, ``ipython_config.py``)
        a bad saved value is reported and its default kept, so the magics always register; from
        ``%config`` a bad value is a one-line UsageError."""
        section = cfg.get(type(self).__name__) if hasattr(cfg, "get") else None
        if not section or not hasattr(section, "items"):
            return super()._load_config(cfg, section_names=section_names, traits=traits)
        pending, problems = list(section.items()), {}
        for _ in range(2):  # a second pass settles threshold/fail_threshold raised together
            retry = []
            for key, value in pending:
                try:
                    super()._load_config(
                        Config({type(self).__name__: {key: value}}),
                        section_names=section_names,
                        traits=traits,
                    )
                    problems.pop(key, None)
                except TraitError as exc:
                    retry.append((key, value))
                    problems[key] = f"{key}={value!r}: {exc}"
            pending = retry
        if problems:
            message = "; ".join(problems.values())
            if self._loaded:
                raise UsageError(f"GradCheck: {message}")
            print(f"gradcheck_magic: ignored a saved setting ({message}); using the default", file=sys.stderr)

    def __init__(self, shell=None, **kwargs):
        self._loaded = False
        self._watching = None  # the Watch of the last check while watching (watch.py)
        super().__init__(shell=shell, **kwargs)
        self._loaded = True

    # ---- %%gradcheck ---------------------------------------------------------------
    def settings(self, args=None) -> Settings:
        """The configured defaults with this line's flags, validated once."""
        base = Settings(
            **{key: getattr(self, key) for key in SETTING_TRAITS if key != "sample"},
            sample=self.sample or None,
        )
        flags = {}
        if args is not None:
            flags = {key: getattr(args, key) for key in FLAG_SETTINGS if getattr(args, key) is not None}
        try:
            return validated(base, **flags)
        except GradCheckError as exc:
            raise UsageError(str(exc)) from None

    @magic_arguments()
    @argument(
        "-f",
        "--forward",
        metavar="NAME",
        help="forward function: returns the cost, or (output, cache) / (cost, cache)",
    )
    @argument(
        "-b",
        "--backward",
        metavar="NAME",
        help="backward function: returns a dict of gradients (dW1 for W1), "
        "or the gradient of a single parameter",
    )
    @argument(
        "-c",
        "--cost",
        metavar="NAME",
        help="cost function applied to the forward's first output, when the forward does not return the cost",
    )
    @argument(
        "-p",
        "--params",
        metavar="NAME",
        help="the parameters: a dict of arrays (each key a block) or a single scalar/array variable",
    )
    @argument(
        "-e",
        "--epsilon",
        type=float,
        metavar="FLOAT",
        help="exact absolute step θ±ε for this run (default: the configured value; auto per entry)",
    )
    @argument(
        "-t",
        "--threshold",
        type=float,
        metavar="FLOAT",
        help="largest relative error that passes, for this run",
    )
    @argument(
        "-m",
        "--mode",
        choices=MODES,
        help="full: every entry; fast: random directions per block; auto: full if small enough by count",
    )
    @argument("-s", "--sample", type=int, metavar="K", help="full differences on K random entries per block")
    @argument("--probes", type=int, metavar="N", help="random directions per block in fast mode")
    @argument("--seed", type=int, help="seed of the directions and samples")
    @argument(
        "-o",
        "--output",
        action="store_true",
        help="return the GradCheckResult (Out shows it; it is not displayed twice)",
    )
    @argument("-q", "--quiet", action="store_true", help="do not display the result (use with -o)")
    @argument("--no-widgets", action="store_true", help="no ipywidgets block picker under the drill-down")
    @argument("--no-progress", action="store_true", help="no progress bar")
    @argument(
        "--raise-on-fail", action="store_true", help="raise GradCheckFailed when a block fails (for CI)"
    )
    @argument(
        "--watch",
        nargs="?",
        const="on",
        choices=("on", "off"),
        help="re-run this check whenever a cell redefines a function it checked (fast mode unless -m), "
        "updating the table in place; --watch off stops",
    )
    @argument(
        "object",
        nargs="?",
        metavar="OBJECT",
        help="a model or layer object to check: %%gradcheck model, %%gradcheck dense1",
    )
    @line_cell_magic
    def gradcheck(self, line: str = "", cell: str = None):
        """Check the backward pass against central differences, per parameter block.

        As a cell magic, runs the cell first.  Without flags the forward, backward,
        cost and parameters are found in the namespace.
        """
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame in tracebacks
        args = self._parse_line(line)
        if args.watch == "off":
            if not self.watch:
                print("gradcheck: not watching")
            self.watch = False  # says so in one line when it was watching
            return None
        if args.watch == "on":
            self.watch = True
        settings = self.settings(args)
        history = self.shell.user_ns.get("In", ())
        if cell is not None and cell.strip():
            assigned = self._run_cell(cell, history)
        else:
            assigned = CellFacts.read(None, "", history)
        if assigned is None:  # the body did not compile: the user's SyntaxError is already shown
            return None

        def run(settings=settings, progress=self.progress and not args.no_progress):
            __tracebackhide__ = True  # noqa: F841 - the user's exception shows the user's frames only
            return gradcheck(
                self.shell.user_ns,
                forward=args.forward,
                backward=args.backward,
                cost=args.cost,
                params=args.params,
                settings=settings,
                progress=progress_factory(progress, settings=settings),
                prefer=assigned,
                target=args.object,
            )

        try:
            result = run()
        except GradCheckError as exc:
            raise UsageError(str(exc)) from None
        except BaseException as exc:
            if hasattr(exc, "_gradcheck_call"):
                print(describe_failure(exc, getattr(exc, "_gradcheck_where", "")), file=sys.stderr)
            raise
        show_widget = (
            self.widgets and not self.watch and not args.no_widgets and not args.quiet and not args.output
        )
        handle = None
        if not args.quiet and not args.output:
            from IPython.display import display

            from .widgets import widgets_supported

            # under a live widget that shows the worst block, the static sections start closed
            result.open_drilldown = not (show_widget and widgets_supported(self.shell))
            handle = display(result, display_id=True)
        if show_widget:  # with -o the caller owns the result: result.drilldown() gives the widget
            from .widgets import show_drilldown

            show_drilldown(result, self.shell)
        if self.watch:
            self._start_watching(args, run, result, handle)
        if (self.raise_on_fail or args.raise_on_fail) and not result.passed:
            raise GradCheckFailed(f"gradient check failed: {', '.join(result.failed)}")
        return result if args.output else None

    def _start_watching(self, args, run, result, handle):
        """Watch this check (the last one): re-run in fast mode unless a mode was set, no progress bar."""
        from .watch import Watch

        mode = args.mode or (self.mode if self.mode != "auto" else "fast")
        quick = validated(self.settings(args), mode=mode)
        before, self._watching = self._watching, Watch(self.shell, lambda: run(quick, False), result, handle)
        if before is not None:
            before.stop(
                " (the new check is watched instead)", quiet=before.functions == self._watching.functions
            )
        if before is None or before.functions != self._watching.functions:
            print(f"gradcheck: watching {self._watching.describe()} ({mode} mode); --watch off stops")

    def _parse_line(self, line: str):
        """The magic line's options; a bad line (unclosed quote included) is one UsageError.
        Names may be quoted: ``-f "forward_propagation_n"``."""
        try:
            args = parse_argstring(self.gradcheck, line)
        except ValueError as exc:  # shlex: "No closing quotation"
            raise UsageError(f"%gradcheck: {exc} in {line!r}") from None
        for key in ("forward", "backward", "cost", "params"):
            value = getattr(args, key)
            if value and len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                setattr(args, key, value[1:-1])
        return args

    def _run_cell(self, cell: str, history=()):
        """Run the body like a normal cell (magics inside work); its errors propagate.
        Returns what it wrote and called, with the notebook's history (the plan follows the user's
        latest call), or None when the body has a syntax error (shown as the user's own)."""
        __tracebackhide__ = True  # noqa: F841
        source = self.shell.transform_cell(cell)
        filename = self.shell.compile.cache(source, running_count(self.shell), raw_code=cell)
        try:
            tree = self.shell.compile.ast_parse(source, filename=filename)
        except (SyntaxError, OverflowError, ValueError):
            self.shell.showsyntaxerror(filename)
            return None
        exec(self.shell.compile(tree, filename, "exec"), self.shell.user_ns)
        return CellFacts.read(tree, source, history)

    # ---- %gradcheck_config -----------------------------------------------------------------
    @line_magic
    def gradcheck_config(self, line: str = ""):
        """Show or set the defaults of later checks: ``%gradcheck_config epsilon=1e-7 threshold=2e-7``.

        Bare, it shows the settings; ``--reset`` restores the defaults.  Keys:
        epsilon (a number or auto), threshold, fail_threshold, mode (auto/full/fast),
        sample, probes, seed, time_budget, widgets, progress, raise_on_fail, watch (on/off).
        Also settable as ``%config GradCheck.<key> = value``.
        """
        try:
            tokens = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%gradcheck_config: {exc} in {line!r}") from None
        reset = bool(tokens) and tokens[0] == "--reset"
        tokens = tokens[1:] if reset else tokens
        if not tokens and not reset:
            print(self.describe())
            return
        updates = {key: self.traits()[key].default() for key in CONFIG_KEYS} if reset else {}
        for token in tokens:  # the whole line is checked before anything changes
            key, sep, raw = token.partition("=")
            if not sep:
                raise UsageError(
                    f"%gradcheck_config: expected key=value, got {token!r} (keys: {', '.join(CONFIG_KEYS)})"
                )
            if key not in CONFIG_KEYS:
                raise UsageError(
                    f"%gradcheck_config: unknown key {key!r}{suggest(key, CONFIG_KEYS)}; "
                    f"keys: {', '.join(CONFIG_KEYS)}"
                )
            updates[key] = self._parse(key, raw)
        try:
            with self.hold_trait_notifications():  # cross-checks run once, on the final values
                for key, value in updates.items():
                    setattr(self, key, value)
        except TraitError as exc:
            raise UsageError(f"%gradcheck_config: {exc}") from None
        if not tokens:
            print(self.describe())

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
            raise UsageError(
                f"%gradcheck_config: {key}={raw!r} is not a valid {type(trait).__name__.lower()}"
            ) from None

    def describe(self) -> str:
        lines = ["gradcheck settings (%gradcheck_config key=value; --reset for defaults):"]
        for key in CONFIG_KEYS:
            value = getattr(self, key)
            shown = "auto (per-entry step)" if key == "epsilon" and value is None else value
            lines.append(f"  {key:<15}{shown}")
        return "\n".join(lines)
