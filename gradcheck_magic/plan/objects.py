"""Models, networks and layer objects whose methods read their own arrays.

Such code only sees a change when its own arrays change, so these blocks are the
user's arrays, perturbed in place; :class:`~..safety.Snapshot` puts back
every array, attribute and dict entry on every path (pass, fail, exception, Ctrl-C).
A float32, integer, read-only or non-contiguous array is never written: one float64 copy
of it is swapped into every dict entry, list item and attribute the snapshot reaches
(:meth:`~..safety.Snapshot.stand_in`), the methods compute in float64 on it, and the restore
swaps the user's array back.

- cs231n models: ``model.params`` (dict), ``loss, grads = model.loss(X, y)``.
- deep learning from scratch: ``network.params``, ``network.loss(x, t)``,
  ``network.gradient(x, t)`` (its ``numerical_gradient`` is never called).
- nnfs layer objects: ``.weights``/``.biases``, ``.forward(inputs)`` storing ``.output``,
  ``.backward(dvalues)`` storing ``.dweights``/``.dbiases``/``.dinputs``; one layer
  (``%gradcheck dense1``) or plain ``forward``/``backward`` functions calling the objects.
"""

from __future__ import annotations

import inspect
from typing import Optional

import numpy as np

from ..errors import GradCheckError
from ..safety import Snapshot
from .binding import (
    Given,
    attribute,
    bind_by_name,
    bind_call,
    defined_in,
    looks_like_parameters,
    lookup,
    refuse_empty,
    resolved,
    user_functions,
)
from .checkplan import CheckPlan, Hints, Request
from .problem import ConventionProblem, marked
from .ranking import Candidate, dry_run

#: Attribute names that hold a layer's parameters even before its gradient attribute exists.
PARAM_ATTRS = ("weights", "biases", "W", "b", "gamma", "beta", "kernel", "bias")
#: A layer's data, never its parameters, though a backward stores ``dinputs`` beside ``inputs``.
DATA_ATTRS = ("inputs", "input", "output", "outputs", "x", "X")
#: Names the upstream gradient of a single layer may have in the namespace.
UPSTREAM_NAMES = ("dvalues", "dout", "dy")
#: Seed of the upstream gradient drawn when the namespace has none of the output's shape.
UPSTREAM_SEED = 0


def is_model(value) -> bool:
    """A cs231n model or a from-scratch network: a dict ``.params`` of arrays and a ``.loss`` method."""
    return (
        not isinstance(value, type)
        and looks_like_parameters(attribute(value, "params"))
        and callable(attribute(value, "loss"))
    )


def layer_params(obj) -> list:
    """Attribute names of a layer object's parameter arrays (``weights``, or any ``a`` with a ``da``)."""
    attrs = attribute(obj, "__dict__", None)
    attrs = attrs if isinstance(attrs, dict) else {}
    return [
        k
        for k, v in attrs.items()
        if isinstance(v, np.ndarray)
        and v.dtype.kind in "biuf"
        and v.size
        and k not in DATA_ATTRS
        and (k in PARAM_ATTRS or (f"d{k}" in attrs and not k.startswith("d")))
    ]


def is_layer(value) -> bool:
    return (
        not isinstance(value, type)
        and callable(attribute(value, "forward"))
        and callable(attribute(value, "backward"))
        and bool(layer_params(value))
    )


def cell_call(prefer, label: str):
    """The plain names the cell itself passed to ``label`` (``model.loss(Xs, ys)``), or None."""
    return getattr(prefer, "calls", {}).get(label)


def resolve(request: Request) -> Optional[CheckPlan]:
    """A model/network/layer-object convention for this line, or None."""
    namespace, prefer = request.namespace, request.cell
    forward, backward, cost, params, target = (
        request.forward,
        request.backward,
        request.cost,
        request.params,
        request.target,
    )
    dotted = [x for x in (forward, backward, params) if isinstance(x, str) and "." in x]
    alias = _method_owner(namespace, forward) if forward and not (target or dotted) else None
    if alias is not None:  # loss, gradient, params = network.loss, network.gradient, network.params
        owner_name, owner = alias
        return _model(namespace, owner_name, owner, forward, backward, params, prefer)
    if target:
        owner_name, owner = target, lookup(namespace, target, "OBJECT")
        if isinstance(owner, (np.ndarray, dict, list, tuple, float, int)):
            kind = "an array" if isinstance(owner, np.ndarray) else f"a {type(owner).__name__}"
            raise GradCheckError(
                f"{target} is {kind}, "
                "not a model or layer object: the word after "
                f"%gradcheck names an object to check; to check functions of {target}, pass it "
                f"with -p {target}"
            )
    elif dotted:
        owner_name = dotted[0].split(".")[0]
        owner = lookup(namespace, owner_name)
    elif not (forward or backward or cost or params):
        return None  # no flag: candidates() offers the models to the ranking, with everything else
    elif forward and backward and not (cost or params):
        return _functions_over_layers(namespace, forward, backward)
    else:
        return None
    if not (
        target or attribute(owner, "params") is not None or is_layer(owner) or (params and "." in params)
    ):
        return None  # dotted functions of a module or helper object: the course discovery looks them up
    flags = {"-f/--forward": forward, "-b/--backward": backward, "-p/--params": params}
    for flag, name in flags.items():
        if name and not name.startswith(owner_name + "."):
            raise GradCheckError(
                f"{flag} {name}: with the object {owner_name} give its own attribute "
                f"({owner_name}.…), or leave the flag out"
            )
    if attribute(owner, "params") is not None or (params and "." in params):
        return _model(namespace, owner_name, owner, forward, backward, params, prefer)
    if is_layer(owner):
        return _layer(namespace, owner_name, owner, prefer)
    has = {a: attribute(owner, a) is not None for a in ("params", "loss")}
    missing = "params" if has["loss"] else "loss" if has["params"] else "params"
    raise GradCheckError(
        f"{owner_name} ({type(owner).__name__}) has no attribute {missing!r}: expected a "
        "model (.params dict and .loss method) or a layer object (.weights/.W with "
        ".forward and .backward)"
    )


def from_call(call, request: Request) -> Optional[CheckPlan]:
    """A model's ``loss``/``gradient``/``numerical_gradient`` call (``net.loss(X, y, reg=0.05)``,
    ``network.gradient(x_batch, t_batch)``): that model, on exactly those arguments; else None."""
    if call.function.split(".")[-1] not in DATA_METHODS:
        return None
    found = _method_owner(request.namespace, call.function)
    if found is None:
        return None
    owner_name, owner = found
    return dry_run(_model(request.namespace, owner_name, owner, None, None, None, request.cell))


def _method_owner(namespace: dict, name: str):
    """(the owner's name, the model) when ``name`` is a bound method of a model (``loss =
    network.loss``), else None."""
    value = resolved(namespace, name)
    owner = getattr(value, "__self__", None)
    if not (inspect.ismethod(value) and is_model(owner)):
        return None
    owner_name = next((k for k, v in namespace.items() if v is owner and not k.startswith("_")), None)
    return owner_name or type(owner).__name__, owner


def _first_output(call, values: list, keywords=None):
    """The cost closure: ``call(*values, **keywords)``'s first output (a loss method returns
    ``(loss, grads)``)."""
    keywords = keywords or {}

    def evaluate():
        __tracebackhide__ = True  # noqa: F841
        out = call(*values, **keywords)
        return out[0] if isinstance(out, tuple) else out

    return evaluate


#: A model's methods whose calls give the data it is checked on (they all take the same data).
DATA_METHODS = ("loss", "gradient", "numerical_gradient")


def _latest_call(namespace, prefer, owner, methods):
    """The user's most recent call of one of ``methods`` (bound methods of ``owner``, under any
    name: ``net.loss``, ``loss = network.loss``), in the %%gradcheck cell, then in the history."""
    wanted = [m for m in methods if m is not None]

    def fits(call) -> bool:
        if call.function.split(".")[-1] not in (*DATA_METHODS, *(getattr(m, "__name__", "") for m in wanted)):
            return False
        value = resolved(namespace, call.function)
        return any(value == m for m in wanted)

    history = getattr(prefer, "history", None) or []
    return next((c for c in history if fits(c) and _has_labels(c, namespace)), None)


#: Names of a loss's labels: a call without them returns scores (cs231n's ``model.loss(X)``).
LABELS = ("y", "t", "Y", "labels", "targets", "target")


def _has_labels(call, namespace) -> bool:
    """Does the call give the labels its method takes (``net.loss(X)`` gives scores, no loss)?"""
    method = resolved(namespace, call.function)
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return True
    names = [n for n, p in params.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    given = set(names[: len(call.args)]) | set(call.keywords)
    return all(n in given for n in names if n in LABELS)


def _method_args(namespace, loss, loss_label, gradient, gradient_label, prefer) -> tuple:
    """(the loss's arguments, the gradient's) as :class:`Given`: the user's latest call of the loss
    (or of its gradient, numerical_gradient: the same data), exactly as given with the values as they
    are now; else by name.  The gradient gets its own latest call, else the loss's arguments."""
    owner = getattr(loss, "__self__", None)
    siblings = [attribute(owner, m) for m in DATA_METHODS] if owner is not None else []
    call = _latest_call(namespace, prefer, owner, [loss])
    call = call or _latest_call(namespace, prefer, owner, [gradient, *siblings])
    args = bind_call(loss, call, namespace) if call is not None else None
    if args is None:
        args = Given(bind_by_name(loss, namespace, loss_label, given=cell_call(prefer, loss_label)))
    if gradient is None:
        return args, args
    own = _latest_call(namespace, prefer, owner, [gradient])
    grad_args = bind_call(gradient, own, namespace) if own is not None else None
    if grad_args is None:
        grad_args = bind_call(gradient, call, namespace) if call is not None else None
    if grad_args is None:
        given = cell_call(prefer, gradient_label) or cell_call(prefer, loss_label)
        grad_args = Given(bind_by_name(gradient, namespace, gradient_label, given=given))
    return args, grad_args


def _model(namespace, owner_name, owner, forward, backward, params, prefer=()) -> CheckPlan:
    params_label = params or f"{owner_name}.params"
    weights = lookup(namespace, params_label, "-p/--params")
    if not looks_like_parameters(weights):
        raise GradCheckError(f"{params_label} is not a dict of numpy arrays (keys W1, b1, ...)")
    loss_label = forward or f"{owner_name}.loss"
    loss = lookup(namespace, loss_label, "-f/--forward")
    gradient_label = backward or (
        f"{owner_name}.gradient" if callable(attribute(owner, "gradient")) else None
    )
    gradient = lookup(namespace, gradient_label, "-b/--backward") if gradient_label else None
    args, grad_args = _method_args(namespace, loss, loss_label, gradient, gradient_label, prefer)
    refuse_empty(args.items() + grad_args.items())
    roots = {owner_name: owner, **dict(args.items() + grad_args.items())}
    snapshot = Snapshot({**roots, loss_label: loss, **({gradient_label: gradient} if gradient else {})})
    for k, v in weights.items():
        snapshot.watch(f"{params_label}[{k!r}]", v)
    for n, v in args.items() + grad_args.items():
        snapshot.watch(n, v)
    elsewhere = (
        "a tuple, a closure, a copy in a layer object, or was it replaced in "
        f"{params_label} after the layers were built?"
    )
    work = {k: snapshot.stand_in(k, f"{params_label}[{k!r}]", v, owner_name) for k, v in weights.items()}
    bound = prefer.provenance(n for n, _ in args.items()) if hasattr(prefer, "provenance") else ""
    loss_call = marked(loss, f"{loss_label}({args.text()}){bound}")
    values, keywords = args.values, args.kwvalues

    evaluate = _first_output(loss_call, values, keywords)

    def gradients():
        __tracebackhide__ = True  # noqa: F841
        if gradient is not None:
            grads = marked(gradient, f"{gradient_label}({grad_args.text()})")(
                *grad_args.values, **grad_args.kwvalues
            )
            if isinstance(grads, tuple) and len(grads) == 2 and isinstance(grads[1], dict):
                grads = grads[1]  # -b model.loss: the (loss, grads) a cs231n model returns
        else:
            out = loss_call(*values, **keywords)
            if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
                raise GradCheckError(
                    f"{loss_label} returned {type(out).__name__}; expected (loss, grads) "
                    "with grads a dict keyed like the params (or pass -b NAME)"
                )
            grads = out[1]
        if not isinstance(grads, dict):
            raise GradCheckError(
                f"{gradient_label} returned {type(grads).__name__}; expected a dict of "
                "gradients keyed like the params"
            )
        return {k: ((grads[k], k) if k in grads else (grads.get(f"d{k}"), f"d{k}")) for k in work}

    def unread(names):
        k = names[0]
        return snapshot.swapped_unread(names, loss_label, elsewhere) or (
            f"{loss_label} did not change when {params_label}[{k!r}] was perturbed in place: the arrays "
            f"your methods read are not the ones in {params_label} (does a layer object keep a copy, or "
            f"was {params_label}[{k!r}] replaced after the layers were built?)"
            + (f" (also {', '.join(names[1:])})" if len(names) > 1 else "")
        )

    arg_text = args.text()
    description = (
        f"{loss_label}({arg_text}), {gradient_label}({grad_args.text()})"
        if gradient
        else f"{loss_label}({arg_text}) → (loss, grads)"
    ) + f"; {params_label} perturbed in place{snapshot.swapped_description()}"
    x = values[0] if values and isinstance(values[0], np.ndarray) and values[0].ndim >= 2 else None
    hints = Hints(
        m=int(x.shape[0]) if x is not None else None,
        lambd=attribute(owner, "reg"),
        backward_fn=gradient or loss,
        cost_fns=(loss,) if gradient is not None else (),
    )
    plan = CheckPlan(description, loss_label, params_label, dict(weights), snapshot=snapshot, hints=hints)
    plan.source = args.source
    snapshot.swap_in()
    notes = snapshot.swapped_notes()
    plan.problem = ConventionProblem(plan, snapshot.draws, work, evaluate, gradients, unread, notes)
    return plan


def _upstream(namespace: dict, shape: tuple, label: str):
    """(dvalues, how it was chosen): the namespace's when it has the output's shape, else seeded."""
    for name in UPSTREAM_NAMES:
        value = namespace.get(name)
        if isinstance(value, np.ndarray) and value.shape == shape:
            return np.array(value, dtype=np.float64), f"upstream gradient {name} from the namespace"
    drawn = np.random.default_rng(UPSTREAM_SEED).standard_normal(shape)
    return drawn, f"upstream gradient: seeded random {shape} (no dvalues/dout of {label}'s output shape)"


def _layer(namespace, owner_name, layer, prefer=()) -> CheckPlan:
    """One layer object against an upstream gradient: cost = Σ output·dvalues."""
    fallback = {k: v for k, v in vars(layer).items() if isinstance(v, np.ndarray)}
    if "inputs" not in namespace and "inputs" not in fallback and isinstance(namespace.get("X"), np.ndarray):
        fallback["inputs"] = namespace["X"]
    label = f"{owner_name}.forward"
    args = bind_by_name(layer.forward, namespace, label, fallback, given=cell_call(prefer, label))
    snapshot = Snapshot({owner_name: layer, **dict(args)})
    attrs = layer_params(layer)
    for a in attrs:
        snapshot.watch(f"{owner_name}.{a}", getattr(layer, a))
    originals = {f"{owner_name}.{a}": getattr(layer, a) for a in attrs}
    work = {label: snapshot.stand_in(label, label, v, owner_name) for label, v in originals.items()}
    inputs = {
        n: np.array(v, dtype=np.float64) for n, v in args if isinstance(v, np.ndarray) and v.dtype.kind == "f"
    }
    work.update(inputs)
    call_args = [inputs.get(n, v) for n, v in args]
    forward = marked(layer.forward, f"{owner_name}.forward({', '.join(n for n, _ in args)})")
    backward = marked(layer.backward, f"{owner_name}.backward(dvalues)")

    def output():
        __tracebackhide__ = True  # noqa: F841
        returned = forward(*call_args)
        return np.asarray(getattr(layer, "output", returned) if returned is None else returned)

    try:
        first = output()
    except BaseException:
        snapshot.restore()
        raise
    snapshot.restore()  # the dry run's attributes and draws are not the check's
    dvalues, how = _upstream(namespace, first.shape, f"{owner_name}")

    def evaluate():
        return float(np.sum(output() * dvalues))

    def gradients():
        __tracebackhide__ = True  # noqa: F841
        output()
        backward(dvalues.copy())
        found = {f"{owner_name}.{a}": (getattr(layer, f"d{a}", None), f"{owner_name}.d{a}") for a in attrs}
        for n in inputs:
            found[n] = (getattr(layer, "dinputs", None), f"{owner_name}.dinputs")
        return found

    def unread(names):
        return snapshot.swapped_unread(names, f"{owner_name}.forward") or (
            f"{owner_name}.forward did not change its output when {names[0]} was perturbed in place: "
            "the arrays it reads are not the attributes the check perturbs"
        )

    description = (
        f"{owner_name}.forward → Σ output·dvalues, {owner_name}.backward(dvalues); {how}"
        + snapshot.swapped_description()
    )
    plan = CheckPlan(
        description,
        f"{owner_name}.forward",
        owner_name,
        {**originals, **dict(args)},
        snapshot=snapshot,
        hints=Hints(backward_fn=layer.backward),
    )
    snapshot.swap_in()
    notes = snapshot.swapped_notes()
    plan.problem = ConventionProblem(plan, snapshot.draws, work, evaluate, gradients, unread, notes)
    return plan


def _calls_layers(namespace: dict, fn) -> bool:
    code = getattr(fn, "__code__", None)
    return code is not None and any(is_layer(namespace.get(n)) for n in code.co_names)


def candidates(request: Request) -> list:
    """Without flags, what the ranking weighs from here: every model or network object (``.params``
    dict and ``.loss``), and every forward function that calls layer objects with its mirrored
    backward.  A single layer object is checked only when named (``%gradcheck dense1``)."""
    if request.flagged:
        return []
    namespace, prefer = request.namespace, request.cell
    found = [
        _model_candidate(namespace, name, prefer)
        for name in sorted(k for k, v in namespace.items() if not k.startswith("_") and is_model(v))
    ]
    for name, fn in user_functions(namespace, "forward").items():
        mirrored = name.replace("forward", "backward")
        if _calls_layers(namespace, fn) and callable(namespace.get(mirrored)):
            found.append(_over_layers_candidate(namespace, name, mirrored))
    return found


def _model_candidate(namespace: dict, name: str, prefer=()) -> Candidate:
    owner = namespace[name]
    kind, choose = "models", f"%gradcheck {name}"
    gradient = attribute(owner, "gradient")
    try:
        args, grad_args = _method_args(
            namespace,
            owner.loss,
            f"{name}.loss",
            gradient if callable(gradient) else None,
            f"{name}.gradient",
            prefer,
        )
    except (GradCheckError, TypeError, ValueError) as exc:
        return Candidate(name, choose, kind, frozenset([name]), refusal=str(exc))
    return Candidate(
        name,
        choose,
        kind,
        inputs=frozenset([name, *(n for n, _ in args.items() + grad_args.items())]),
        local=type(owner).__module__ == "__main__",
        build=lambda: dry_run(_model(namespace, name, owner, None, None, None, prefer)),
        arrays=frozenset(id(v) for v in owner.params.values() if isinstance(v, np.ndarray)),
        reaches=frozenset([name]),
        defined=name,
    )


def _over_layers_candidate(namespace: dict, forward: str, backward: str) -> Candidate:
    label, choose = f"{forward} / {backward}", f"-f {forward} -b {backward}"
    kind = "functions over layer objects"
    fwd, bwd = namespace[forward], namespace[backward]
    layers = [n for n in fwd.__code__.co_names if is_layer(namespace.get(n))]
    try:
        args = bind_by_name(fwd, namespace, forward) + bind_by_name(bwd, namespace, backward)
    except (GradCheckError, TypeError, ValueError) as exc:
        return Candidate(label, choose, kind, frozenset(layers), (forward, backward), refusal=str(exc))
    return Candidate(
        label,
        choose,
        kind,
        inputs=frozenset([*layers, *(n for n, _ in args)]),
        functions=(forward, backward),
        local=defined_in(fwd) == "__main__",
        build=lambda: dry_run(_functions_over_layers(namespace, forward, backward)),
    )


def _shared_backward(layers: list):
    """The gradients of layer objects are computed in their class's ``backward``: when every layer
    is of one class, that method is where a wrong ``self.dweights`` line is."""
    classes = {type(layer) for layer in layers}
    method = getattr(layers[0], "backward", None) if len(classes) == 1 else None
    return method if callable(method) else None


def _functions_over_layers(namespace, forward, backward) -> Optional[CheckPlan]:
    """Plain ``forward``/``backward`` functions that call layer objects of the namespace: the blocks
    are those objects' parameters (``dense1.weights``, ...), paired with ``dense1.dweights``."""
    if "." in forward or "." in backward:
        return None
    fwd, bwd = namespace.get(forward), namespace.get(backward)
    if not (callable(fwd) and callable(bwd) and hasattr(fwd, "__code__")):
        return None
    layers = [n for n in dict.fromkeys(fwd.__code__.co_names) if is_layer(namespace.get(n))]
    if not layers:
        return None
    args = bind_by_name(fwd, namespace, forward)
    back_args = bind_by_name(bwd, namespace, backward)
    snapshot = Snapshot(
        {forward: fwd, backward: bwd, **{n: namespace[n] for n in layers}, **dict(args + back_args)}
    )
    work, originals, grad_keys = {}, {}, {}
    for n in layers:
        for a in layer_params(namespace[n]):
            label = f"{n}.{a}"
            snapshot.watch(label, getattr(namespace[n], a))
            work[label] = snapshot.stand_in(label, label, getattr(namespace[n], a), n)
            originals[label] = getattr(namespace[n], a)
            grad_keys[label] = (namespace[n], f"d{a}")
    for n, v in args + back_args:
        snapshot.watch(n, v)
    fwd_call = marked(fwd, f"{forward}({', '.join(n for n, _ in args)})")
    bwd_call = marked(bwd, f"{backward}({', '.join(n for n, _ in back_args)})")
    values, back_values = [v for _, v in args], [v for _, v in back_args]

    evaluate = _first_output(fwd_call, values)

    def gradients():
        __tracebackhide__ = True  # noqa: F841
        for obj, key in grad_keys.values():
            if key in vars(obj):
                delattr(obj, key)  # a gradient left from an earlier call must not pass for this one
        fwd_call(*values)
        bwd_call(*back_values)
        return {
            label: (getattr(obj, key, None), label.split(".")[0] + "." + key)
            for label, (obj, key) in grad_keys.items()
        }

    def unread(names):
        return snapshot.swapped_unread(names, forward) or (
            f"{forward} did not change when {names[0]} was perturbed in place: it does not read that "
            "layer's arrays (a copy, or another object?)"
        )

    plan = CheckPlan(
        f"{forward}({', '.join(n for n, _ in args)}) over {', '.join(layers)}, "
        f"{backward}(...); layer arrays perturbed in place{snapshot.swapped_description()}",
        forward,
        ", ".join(layers),
        originals,
        snapshot=snapshot,
        hints=Hints(backward_fn=_shared_backward([namespace[n] for n in layers]) or bwd),
    )
    snapshot.swap_in()
    notes = snapshot.swapped_notes()
    plan.problem = ConventionProblem(plan, snapshot.draws, work, evaluate, gradients, unread, notes)
    return plan


__all__ = ["candidates", "is_layer", "is_model", "layer_params", "resolve"]
