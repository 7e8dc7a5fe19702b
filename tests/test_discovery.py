"""Discovery on plain namespaces: no numerics, no shell."""

import numpy as np
import pytest

from gradcheck_magic.errors import GradCheckError
from gradcheck_magic.plan import CellFacts, CheckPlan, Request, course, ranking
from gradcheck_magic.plan.binding import CACHE, OUTPUT, PARAMS, VALUE, bind
from gradcheck_magic.plan.ranking import Candidate
from gradcheck_magic.safety import Snapshot


def plan(namespace, prefer=(), others=()):
    """The plan stage on a plain namespace: the course's families and ``others``, one ranking."""
    request = Request(namespace, cell=CellFacts(set(prefer)), snapshot=Snapshot(namespace, None))
    try:
        pool = list(others) + course.candidates(request)
        chosen = ranking.choose(pool, request.written, lambda: course.nothing_fits(pool))
    finally:
        request.snapshot.restore()
    return chosen


def forward_propagation(X, parameters):
    return X, {}


def backward_propagation(X, Y, cache):
    return {}


def compute_cost(A3, Y):
    return 0.0


def compute_cost_with_regularization(A3, Y, parameters, lambd):
    return 0.0


def backward_propagation_with_regularization(X, Y, cache, lambd):
    return {}


def test_arguments_bind_from_parameters_outputs_namespace_and_defaults():
    def backward(AL, Y, caches, parameters, scale=2):
        return {}

    b = bind("backward", backward, {"Y": 1, "AL": "stale"}, "parameters", after_forward=True)
    assert [(a, src) for a, src, _, _ in b.args] == [
        ("AL", OUTPUT),
        ("Y", VALUE),
        ("caches", CACHE),
        ("parameters", PARAMS),
    ]
    assert b.ok


def test_missing_arguments_are_listed():
    b = bind("forward_propagation", forward_propagation, {}, "parameters", after_forward=False)
    assert b.missing == ["X"]


def namespace(**extra):
    ns = {
        "X": np.ones((2, 3)),
        "Y": np.ones((1, 3)),
        "parameters": {"W1": np.ones((2, 2))},
        "forward_propagation": forward_propagation,
        "backward_propagation": backward_propagation,
        "compute_cost": compute_cost,
        "compute_cost_with_regularization": compute_cost_with_regularization,
        "backward_propagation_with_regularization": backward_propagation_with_regularization,
    }
    ns.update(extra)
    return ns


def test_lambd_selects_the_regularized_pair_without_it_the_plain_one():
    chosen = plan(namespace(lambd=0.7))
    assert (chosen.problem.plan.backward.name, chosen.problem.plan.cost.name) == (
        "backward_propagation_with_regularization",
        "compute_cost_with_regularization",
    )
    plain = plan(namespace())
    assert plain.description.startswith("forward_propagation(X, parameters) → compute_cost(A3, Y) →")


def test_a_qualified_name_that_fits_nothing_loses_to_the_plain_pair():
    def backward_propagation_v2(X, Y, cache):
        return {}

    chosen = plan(namespace(backward_propagation_v2=backward_propagation_v2))
    assert chosen.problem.plan.backward.name == "backward_propagation"


def test_ambiguity_lists_the_candidates_and_the_flags():
    def backward_pass(X, Y, cache):
        return {}

    def backprop(X, Y, cache):
        return {}

    ns = namespace(backward_pass=backward_pass, backprop=backprop)
    del ns["backward_propagation"]
    with pytest.raises(GradCheckError, match="ambiguous.*backward_pass.*backprop.*-b/--backward"):
        plan(ns)


def test_gradient_dicts_are_not_taken_for_parameters():
    ns = namespace(grads={"dW1": np.ones((2, 2))})
    assert plan(ns).params_name == "parameters"


def test_the_plan_says_why_it_chose_the_cells_family():
    ns = namespace(lambd=0.7, keep_prob=0.5)
    chosen = plan(ns, prefer={"lambd"})
    assert chosen.problem.plan.backward.name == "backward_propagation_with_regularization"
    assert "the cell assigns or defines lambd" in chosen.reason and "backward_propagation" in chosen.reason


def candidate(label, inputs, build, functions=()):
    return Candidate(label, f"%gradcheck {label}", "models", frozenset(inputs), functions, True, build)


def test_one_rule_ranks_conventions_with_the_course_families():
    built = CheckPlan("model.loss(X, y)", "model.loss", "model.params", {})
    model = candidate("model", {"model", "X", "y"}, lambda: built)
    # the cell assigned the model: it wins, and the course forward is never probed
    probed = []

    def forward_propagation(X, parameters):
        probed.append(X)
        return X, {}

    chosen = plan(namespace(y=1, forward_propagation=forward_propagation), prefer={"model"}, others=[model])
    assert chosen is built and probed == []
    reason = chosen.reason
    assert (
        reason.startswith("chose model over forward_propagation")
        and "the cell assigns or defines model" in reason
    )
    # the cell assigned the course's parameters: the family wins
    assert plan(namespace(y=1), prefer={"parameters"}, others=[model]).params_name


def test_what_nothing_separates_is_refused_with_every_candidate_and_its_flags():
    model = candidate("model", {"model", "X", "y"}, lambda: None)
    with pytest.raises(GradCheckError) as info:
        plan(namespace(y=1, lambd=0.7), others=[model])
    message = str(info.value)
    assert "several candidates fit (" in message and "model" in message
    assert "%gradcheck model" in message
    assert "-f forward_propagation -b backward_propagation_with_regularization -c " in message


def test_a_candidate_whose_probe_raises_is_dropped_and_alone_its_error_surfaces():
    def broken():
        raise ValueError("shapes (4,3) and (7,5) not aligned")

    model = candidate("model", {"model", "X", "y"}, broken)
    chosen = plan(namespace(y=1), others=[model])
    assert chosen.forward == "forward_propagation"
    with pytest.raises(ValueError, match="not aligned"):
        plan({"X": np.ones(2)}, others=[model])
    refused = Candidate("net", "%gradcheck net", "models", refusal="net.loss needs `X`")
    with pytest.raises(GradCheckError, match="net.loss needs `X`"):
        plan({}, others=[refused])
