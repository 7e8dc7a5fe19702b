"""Discovery on plain namespaces: no numerics, no shell."""

import numpy as np
import pytest

from gradcheck_magic.discovery import CACHE, OUTPUT, PARAMS, VALUE, Candidate, bind, plan
from gradcheck_magic.errors import GradCheckError


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


def activation(binding, name, params):
    return False  # the forward returns an activation, so a cost function is needed


def test_lambd_selects_the_regularized_pair_without_it_the_plain_one():
    chosen = plan(namespace(lambd=0.7), returns_cost=activation)
    assert (chosen.backward.name, chosen.cost.name) == (
        "backward_propagation_with_regularization",
        "compute_cost_with_regularization",
    )
    plain = plan(namespace(), returns_cost=activation)
    assert (plain.backward.name, plain.cost.name) == ("backward_propagation", "compute_cost")


def test_a_qualified_name_that_fits_nothing_loses_to_the_plain_pair():
    def backward_propagation_v2(X, Y, cache):
        return {}

    chosen = plan(namespace(backward_propagation_v2=backward_propagation_v2), returns_cost=activation)
    assert chosen.backward.name == "backward_propagation"


def test_ambiguity_lists_the_candidates_and_the_flags():
    def backward_pass(X, Y, cache):
        return {}

    def backprop(X, Y, cache):
        return {}

    ns = namespace(backward_pass=backward_pass, backprop=backprop)
    del ns["backward_propagation"]
    with pytest.raises(GradCheckError, match="ambiguous.*backward_pass.*backprop.*-b/--backward"):
        plan(ns, returns_cost=activation)


def test_gradient_dicts_are_not_taken_for_parameters():
    ns = namespace(grads={"dW1": np.ones((2, 2))})
    assert plan(ns, returns_cost=activation).params_name == "parameters"


def test_the_plan_says_why_it_chose_the_cells_family():
    ns = namespace(lambd=0.7, keep_prob=0.5)
    chosen = plan(ns, returns_cost=activation, prefer={"lambd"})
    assert chosen.backward.name == "backward_propagation_with_regularization"
    assert "the cell assigns or defines lambd" in chosen.reason and "backward_propagation" in chosen.reason


def candidate(label, inputs, build, functions=()):
    return Candidate(label, f"%gradcheck {label}", "models", frozenset(inputs), functions, True, build)


def test_one_rule_ranks_conventions_with_the_course_families():
    class Built:
        plan = type("P", (), {})()

    model = candidate("model", {"model", "X", "y"}, Built)
    # the cell assigned the model: it wins, and the course forward is never probed
    probed = []
    chosen = plan(
        namespace(y=1),
        returns_cost=lambda *a: probed.append(a) or False,
        prefer={"model"},
        others=[model],
    )
    assert isinstance(chosen, Built) and probed == []
    reason = chosen.plan.reason
    assert (
        reason.startswith("chose model over forward_propagation")
        and "the cell assigns or defines model" in reason
    )
    # the cell assigned the course's parameters: the family wins
    assert plan(namespace(y=1), returns_cost=activation, prefer={"parameters"}, others=[model]).params_name


def test_what_nothing_separates_is_refused_with_every_candidate_and_its_flags():
    model = candidate("model", {"model", "X", "y"}, lambda: None)
    with pytest.raises(GradCheckError) as info:
        plan(namespace(y=1, lambd=0.7), returns_cost=activation, others=[model])
    message = str(info.value)
    assert "several candidates fit (" in message and "model" in message
    assert "%gradcheck model" in message
    assert "-f forward_propagation -b backward_propagation_with_regularization -c " in message


def test_a_candidate_whose_probe_raises_is_dropped_and_alone_its_error_surfaces():
    def broken():
        raise ValueError("shapes (4,3) and (7,5) not aligned")

    model = candidate("model", {"model", "X", "y"}, broken)
    chosen = plan(namespace(y=1), returns_cost=activation, others=[model])
    assert chosen.forward.name == "forward_propagation"
    with pytest.raises(ValueError, match="not aligned"):
        plan({"X": np.ones(2)}, returns_cost=activation, others=[model])
    refused = Candidate("net", "%gradcheck net", "models", refusal="net.loss needs `X`")
    with pytest.raises(GradCheckError, match="net.loss needs `X`"):
        plan({}, others=[refused])
