"""Losses with one gradient per array argument (CS224n word2vec, cs231n linear classifiers), a flat
vector at any argument position (CS224n 2017 forward_backward_prop), a one-argument lambda with -p,
and batchnorm-fed biases whose true gradient is zero: the user's call decides the arguments, the
gradients pair with the float array arguments, integer and index arrays are data."""

import random

import pytest
from conftest import check, load, run
from IPython.core.error import UsageError


@pytest.fixture(autouse=True)
def fresh_history(ip):
    """Each test is a notebook of its own: the calls of other tests' cells are not in its ``In``."""
    del ip.user_ns["In"][1:]
    yield


def notebook_cell(ip, code):
    """Run a cell as a notebook does: stored in the history (``In``), which the check reads."""
    result = ip.run_cell(code, store_history=True)
    result.raise_error()
    return result


def failing(result):
    return sorted(result.failed)


def clean(result):
    return result.passed and not result.warned


# ---- cs231n assignment 1: loss, dW = svm_loss_naive(W, X_dev, y_dev, reg) --------------------------

DEV_CELL = """
rng = np.random.default_rng({seed})
X_dev = rng.standard_normal(({n}, {d}))
y_dev = rng.integers({c}, size={n})
W = rng.standard_normal(({d}, {c})) * 0.01
loss, grad = {loss}(W, X_dev, y_dev, 0.05)
"""

LOSSES = ["svm_loss_naive", "svm_loss_vectorized", "softmax_loss_naive", "softmax_loss_vectorized"]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("n,d,c", [(7, 5, 3), (20, 12, 6)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_classifier_loss_on_x_dev_passes_from_the_users_call(ip, loss, n, d, c, seed):
    load(ip, "linear_classifiers")
    notebook_cell(ip, DEV_CELL.format(seed=seed, n=n, d=d, c=c, loss=loss))
    result = check(ip)
    assert clean(result), result
    assert list(result.table.index) == ["W"]
    assert f"{loss}(W, X_dev, y_dev, 0.05)" in result.functions


@pytest.mark.parametrize("loss", ["svm_loss_naive", "softmax_loss_vectorized"])
def test_dash_f_takes_the_arguments_of_the_users_call_in_the_history(ip, loss):
    load(ip, "linear_classifiers")
    notebook_cell(ip, DEV_CELL.format(seed=3, n=9, d=4, c=3, loss=loss))
    result = check(ip, f"-f {loss}")
    assert clean(result) and list(result.table.index) == ["W"], result


def test_the_users_regularization_strength_is_what_is_checked(ip):
    load(ip, "linear_classifiers", replace=[("dW += 2 * reg * W", "dW += reg * W")])
    notebook_cell(ip, DEV_CELL.format(seed=0, n=8, d=5, c=3, loss="svm_loss_naive"))
    result = check(ip)
    assert failing(result) == ["W"]
    assert "analytic − numeric ≈ -0.05 × W" in result.table.loc["W", "note"]  # the call's reg


def test_wrong_margin_gradient_in_svm_loss_naive_fails_w(ip):
    """One block: no passing block rules a line out, so no line is named (suspects.py's rule)."""
    load(ip, "linear_classifiers", replace=[("dW[:, y[i]] -= X[i]", "dW[:, y[i]] += X[i]")])
    notebook_cell(ip, DEV_CELL.format(seed=1, n=8, d=5, c=3, loss="svm_loss_naive"))
    result = check(ip)
    assert failing(result) == ["W"]


def test_a_missing_data_argument_names_its_look_alikes(ip):
    load(ip, "linear_classifiers")
    run(ip, "W = np.zeros((4, 3)); X_dev = np.ones((5, 4)); y_dev = np.zeros(5, dtype=int); reg = 0.1")
    with pytest.raises(UsageError, match=r"svm_loss_naive needs `X`.*X_dev"):
        check(ip, "-f svm_loss_naive")


def test_integer_labels_are_data_and_untouched(ip):
    load(ip, "linear_classifiers")
    notebook_cell(ip, DEV_CELL.format(seed=0, n=6, d=4, c=3, loss="softmax_loss_naive"))
    before = {k: ip.user_ns[k].copy() for k in ("W", "X_dev", "y_dev")}
    result = check(ip)
    assert "y_dev" not in result.table.index and "X_dev" not in result.table.index
    for k, v in before.items():
        assert ip.user_ns[k].dtype == v.dtype and ip.user_ns[k].tobytes() == v.tobytes()


# ---- a one-argument function gets the vector, whatever its argument is called -----------------------


LAMBDAS = {
    "the loss's first output": ("f = lambda w: softmax_loss_naive(w, X_dev, y_dev, 0.0)[0]", "-f f -p W"),
    "a gradient lambda beside it": (
        "f = lambda w: softmax_loss_naive(w, X_dev, y_dev, 0.0)[0]\n"
        "g = lambda w: softmax_loss_naive(w, X_dev, y_dev, 0.0)[1]",
        "-f f -b g -p W",
    ),
    "both outputs": ("f = lambda w: softmax_loss_naive(w, X_dev, y_dev, 0.0)", "-f f -p W"),
}


@pytest.mark.parametrize("kind", sorted(LAMBDAS))
@pytest.mark.parametrize("seed,n,d,c", [(0, 9, 5, 4), (1, 20, 8, 3), (2, 9, 5, 4)])
def test_one_argument_lambda_with_dash_p_gets_the_vector_whatever_its_argument_is_called(
    ip, kind, seed, n, d, c
):
    cell, line = LAMBDAS[kind]
    load(ip, "linear_classifiers")
    run(ip, DEV_CELL.format(seed=seed, n=n, d=d, c=c, loss="softmax_loss_naive") + cell)
    result = check(ip, line)
    assert clean(result) and list(result.table.index) == ["W"], result
    load(ip, "linear_classifiers", replace=[("dW = dW / num_train + 2 * reg * W", "dW = dW + 2 * reg * W")])
    run(ip, cell)
    assert failing(check(ip, line)) == ["W"]


# ---- CS224n word2vec: loss, gradCenterVec, gradOutsideVecs = f(centerWordVec, idx, outsideVectors, dataset)

W2V_CELL = """
dataset, dummy_vectors, dummy_tokens = getDummyObjects(dim={dim}, seed={seed})
centerWordVec = np.random.randn({dim})
loss, gradCenterVec, gradOutsideVecs = {loss}(centerWordVec, {idx}, dummy_vectors[5:], dataset)
"""


@pytest.mark.parametrize("loss", ["naiveSoftmaxLossAndGradient", "negSamplingLossAndGradient"])
@pytest.mark.parametrize("dim", [3, 8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_word2vec_loss_passes_with_one_row_per_float_array_argument(ip, loss, dim, seed):
    load(ip, "word2vec")
    notebook_cell(ip, W2V_CELL.format(dim=dim, seed=seed, loss=loss, idx=seed + 1))
    state = random.getstate()
    result = check(ip)
    assert clean(result), result
    assert list(result.table.index) == ["centerWordVec", "outsideVectors"]
    assert random.getstate() == state  # Python's random is restored after the check


@pytest.mark.parametrize(
    "loss,old,new,blocks",
    [
        (
            "naiveSoftmaxLossAndGradient",
            "gradCenterVec = outsideVectors.T @ delta",
            "gradCenterVec = outsideVectors.T @ probs",
            ["centerWordVec"],
        ),
        (
            "naiveSoftmaxLossAndGradient",
            "gradOutsideVecs = np.outer(delta, centerWordVec)",
            "gradOutsideVecs = np.outer(probs, centerWordVec)",
            ["outsideVectors"],
        ),
        (
            "naiveSoftmaxLossAndGradient",
            "gradCenterVec = outsideVectors.T @ delta",
            "gradCenterVec = (outsideVectors.T @ delta)[None, :]",
            ["centerWordVec"],
        ),
        (
            "naiveSoftmaxLossAndGradient",
            "gradOutsideVecs = np.outer(delta, centerWordVec)",
            "gradOutsideVecs = np.outer(centerWordVec, delta)",
            ["outsideVectors"],
        ),
        (
            "negSamplingLossAndGradient",
            "gradOutsideVecs[outsideWordIdx] += (s_o - 1.0) * centerWordVec",
            "gradOutsideVecs[outsideWordIdx] += (1.0 - s_o) * centerWordVec",
            ["outsideVectors"],
        ),
        (
            "negSamplingLossAndGradient",
            "gradCenterVec = (s_o - 1.0) * u_o + (1.0 - s_k) @ outsideVectors[negatives]",
            "gradCenterVec = (s_o - 1.0) * u_o - (1.0 - s_k) @ outsideVectors[negatives]",
            ["centerWordVec"],
        ),
    ],
)
def test_word2vec_planted_bug_fails_exactly_its_block_with_its_line(ip, loss, old, new, blocks):
    load(ip, "word2vec", replace=[(old, new)])
    notebook_cell(ip, W2V_CELL.format(dim=4, seed=0, loss=loss, idx=2))
    result = check(ip)
    assert failing(result) == blocks
    assert new.split(" = ")[0].split(" += ")[0] in result.table.loc[blocks[0], "suspect"]


def test_negative_sampling_sees_the_same_draws_and_leaves_pythons_random_as_it_was(ip):
    load(ip, "word2vec")
    notebook_cell(ip, W2V_CELL.format(dim=3, seed=0, loss="negSamplingLossAndGradient", idx=1))
    random.seed(77)
    state = random.getstate()
    result = check(ip, "-f negSamplingLossAndGradient")
    assert clean(result), result
    assert random.getstate() == state


@pytest.mark.parametrize("dim,seed", [(3, 0), (3, 1), (6, 2)])
def test_skipgram_on_slices_of_the_word_vectors(ip, dim, seed):
    load(ip, "word2vec")
    notebook_cell(
        ip,
        f"dataset, dummy_vectors, dummy_tokens = getDummyObjects(dim={dim}, seed={seed})\n"
        "loss, gin, gout = skipgram('c', 3, ['a', 'b', 'e', 'd', 'b', 'c'], dummy_tokens, "
        "dummy_vectors[:5, :], dummy_vectors[5:, :], dataset)",
    )
    result = check(ip)
    assert clean(result), result
    assert list(result.table.index) == ["centerWordVectors", "outsideVectors"]


def test_2017_softmax_cost_and_gradient(ip):
    load(ip, "word2vec_2017")
    notebook_cell(
        ip,
        "np.random.seed(3)\npredicted = np.random.randn(4)\noutputVectors = np.random.randn(6, 4)\n"
        "dataset = SmallDataset()\ncost, gradPred, grad = softmaxCostAndGradient(predicted, 2, outputVectors, dataset)",
    )
    result = check(ip)
    assert clean(result) and list(result.table.index) == ["predicted", "outputVectors"], result
    load(
        ip,
        "word2vec_2017",
        replace=[("grad = np.outer(probs, predicted)", "grad = np.outer(predicted, probs).T")],
    )
    run(ip, "dataset = SmallDataset()")
    assert clean(check(ip))  # the same values, written transposed: still right
    load(
        ip,
        "word2vec_2017",
        replace=[("grad[k] += -predicted * (z - 1.0)", "grad[k] += predicted * (z - 1.0)")],
    )
    notebook_cell(
        ip, "cost, gradPred, grad = negSamplingCostAndGradient(predicted, 2, outputVectors, dataset)"
    )
    assert failing(check(ip)) == ["outputVectors"]


# ---- CS224n 2017: cost, grad = forward_backward_prop(data, labels, params, dimensions) --------------

NEURAL_CELL = """
rng = np.random.default_rng({seed})
N, dimensions = {n}, [{dx}, 5, 4]
data = rng.standard_normal((N, dimensions[0]))
labels = np.eye(dimensions[2])[rng.integers(dimensions[2], size=N)]
params = rng.standard_normal((dimensions[0] + 1) * dimensions[1] + (dimensions[1] + 1) * dimensions[2])
"""


@pytest.mark.parametrize("n,dx", [(6, 3), (20, 10)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_backward_prop_with_dash_p_checks_params_the_third_argument(ip, n, dx, seed):
    load(ip, "q2_neural")
    run(ip, NEURAL_CELL.format(seed=seed, n=n, dx=dx))
    result = check(ip, "-f forward_backward_prop -p params")
    assert clean(result) and list(result.table.index) == ["params"], result
    assert "forward_backward_prop(data, labels, params, dimensions)" in result.functions


def test_forward_backward_prop_from_the_users_call_without_flags(ip):
    load(ip, "q2_neural", replace=[("gradW2 = h.T.dot(d2)", "gradW2 = h.T.dot(d2) * 2")])
    notebook_cell(
        ip,
        NEURAL_CELL.format(seed=0, n=8, dx=4)
        + "cost, grad = forward_backward_prop(data, labels, params, dimensions)",
    )
    result = check(ip)
    assert failing(result) == ["params"]
    worst = result.table.loc["params", "worst_index"][0]
    assert 4 * 5 + 5 <= worst < 4 * 5 + 5 + 5 * 4  # inside W2's part of the vector


# ---- cs231n FullyConnectedNet(normalization='batchnorm'): b1 feeds a batchnorm -----------------------

FC_CELL = """
rng = np.random.default_rng({seed})
N, D, H1, H2, C = {n}, 15, 20, 30, 10
X = rng.standard_normal((N, D))
y = rng.integers(C, size=N)
model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg={reg}, normalization='batchnorm', seed={seed})
loss, grads = model.loss(X, y)
"""


@pytest.mark.parametrize("n", [4, 8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batchnorm_net_passes_with_the_biases_before_batchnorm_checked_against_zero(ip, n, seed):
    load(ip, "cs231n_layers", "fc_net")
    notebook_cell(ip, FC_CELL.format(seed=seed, n=n, reg=3.14 if seed else 0.0))
    result = check(ip, "model")
    assert clean(result), result
    assert {"b1", "b2", "gamma1", "beta2", "W3"} <= set(result.table.index)


def test_batchnorm_backward_without_the_mean_term_fails_exactly_the_blocks_below_it(ip):
    load(
        ip,
        "cs231n_layers",
        "fc_net",
        replace=[("(n * dx_hat - dx_hat.sum(axis=0) - x_hat", "(n * dx_hat - x_hat")],
    )
    notebook_cell(ip, FC_CELL.format(seed=0, n=6, reg=0.0))
    result = check(ip, "model")
    assert failing(result) == ["W1", "W2", "b1", "b2", "beta1", "gamma1"]


def test_a_nonzero_gradient_for_a_bias_feeding_batchnorm_fails_that_bias(ip):
    load(
        ip,
        "cs231n_layers",
        "fc_net",
        replace=[
            (
                'dout, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(dout, fc)',
                'dout, grads[f"W{i}"], grads[f"b{i}"] = *affine_backward(dout, fc)[:2], before_bn.sum(axis=0)',
            )
        ],
    )
    notebook_cell(ip, FC_CELL.format(seed=1, n=4, reg=0.0))
    result = check(ip, "model")
    assert failing(result) == ["b1", "b2"]  # the bias gradient taken before the batchnorm's backward
    assert "its true gradient is zero" in result.table.loc["b1", "note"]


def test_a_model_none_of_whose_blocks_moves_the_loss_is_told_its_arrays_are_not_read(ip):
    frozen = "def loss(self, X, y=None):\n        caches = []\n        if hasattr(self, 'frozen'):\n            return self.frozen.loss(X, y)\n"
    load(ip, "cs231n_layers", "fc_net", replace=[("def loss(self, X, y=None):\n        caches = []", frozen)])
    run(ip, FC_CELL.format(seed=0, n=4, reg=0.0) + "import copy\nmodel.frozen = copy.deepcopy(model)")
    with pytest.raises(UsageError, match="the arrays your methods read are not the ones"):
        check(ip, "model")


SGD_CELL = """
dataset, dummy_vectors, dummy_tokens = getDummyObjects()
gradcheck_naive(lambda vec: word2vec_sgd_wrapper(skipgram, dummy_tokens, vec, dataset, 5, {loss}), dummy_vectors, "{loss} Gradient")
"""


@pytest.mark.parametrize("loss", ["naiveSoftmaxLossAndGradient", "negSamplingLossAndGradient"])
def test_bare_check_after_the_courses_own_gradcheck_naive_cell_checks_its_lambda(ip, loss):
    load(ip, "word2vec")
    notebook_cell(ip, SGD_CELL.format(loss=loss))
    state = random.getstate()
    result = check(ip)
    assert clean(result), result
    assert list(result.table.index) == ["wordVectors"]
    assert "word2vec_sgd_wrapper(skipgram, dummy_tokens, dummy_vectors, dataset, 5" in result.functions
    assert random.getstate() == state


def test_sgd_wrapper_with_a_wrong_skipgram_fails_the_word_vectors(ip):
    load(ip, "word2vec", replace=[("gradOutsideVectors += g_outside", "gradOutsideVectors -= g_outside")])
    notebook_cell(ip, SGD_CELL.format(loss="negSamplingLossAndGradient"))
    assert failing(check(ip)) == ["wordVectors"]


def test_an_exception_mid_check_leaves_the_vectors_and_pythons_random_as_they_were(ip):
    load(
        ip,
        "word2vec",
        replace=[
            (
                "    negatives = getNegativeSamples(outsideWordIdx, dataset, K)\n",
                "    negatives = getNegativeSamples(outsideWordIdx, dataset, K)\n"
                "    calls.append(1)\n"
                "    if len(calls) == 9:\n"
                "        raise ValueError('planted failure')\n",
            )
        ],
    )
    notebook_cell(ip, "calls = []" + W2V_CELL.format(dim=3, seed=0, loss="negSamplingLossAndGradient", idx=1))
    before = {k: ip.user_ns[k].copy() for k in ("centerWordVec", "dummy_vectors")}
    random.seed(5)
    state = random.getstate()
    with pytest.raises(ValueError, match="planted failure"):
        check(ip)
    assert random.getstate() == state
    for k, v in before.items():
        assert ip.user_ns[k].tobytes() == v.tobytes()


def test_dash_p_names_the_vector_the_call_passes_under_another_name(ip):
    load(ip, "q2_neural")
    notebook_cell(
        ip,
        NEURAL_CELL.format(seed=1, n=5, dx=3)
        + "theta = params.copy()\ncost, grad = forward_backward_prop(data, labels, theta, dimensions)",
    )
    result = check(ip, "-f forward_backward_prop -p theta")
    assert clean(result) and list(result.table.index) == ["params"], result
    with pytest.raises(
        UsageError, match="-p labels: forward_backward_prop returns no gradient of labels's shape"
    ):
        check(ip, "-f forward_backward_prop -p labels")


CS231N_SVM_CELL = """
def grad_check_sparse(f, x, analytic_grad, num_checks=3, h=1e-5):
    for i in range(num_checks):
        ix = tuple(np.random.randint(m) for m in x.shape)
        old = x[ix]
        x[ix] = old + h
        plus = f(x)
        x[ix] = old - h
        minus = f(x)
        x[ix] = old

rng = np.random.default_rng({seed})
X_dev = rng.standard_normal((12, 6))
y_dev = rng.integers(4, size=12)
W = rng.standard_normal((6, 4)) * 0.0001
loss, grad = svm_loss_naive(W, X_dev, y_dev, 0.0)
f = lambda w: svm_loss_naive(w, X_dev, y_dev, 0.0)[0]
grad_numerical = grad_check_sparse(f, W, grad)
"""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bare_check_after_cs231ns_svm_gradient_cell_checks_that_call(ip, seed):
    load(ip, "linear_classifiers")
    notebook_cell(ip, CS231N_SVM_CELL.format(seed=seed))
    result = check(ip)
    assert clean(result) and list(result.table.index) == ["W"], result
    assert "svm_loss_naive(W, X_dev, y_dev, 0.0)" in result.functions


def test_the_gradcheck_cell_itself_gives_the_call(ip):
    load(ip, "word2vec")
    body = W2V_CELL.format(dim=5, seed=1, loss="naiveSoftmaxLossAndGradient", idx=3)
    result = ip.run_cell_magic("gradcheck", "-o", body)
    assert clean(result) and list(result.table.index) == ["centerWordVec", "outsideVectors"], result
    assert result.plan.source.endswith("in the %%gradcheck cell"), result.plan


def test_dash_p_on_integer_labels_is_refused_as_data(ip):
    load(ip, "linear_classifiers")
    notebook_cell(ip, DEV_CELL.format(seed=0, n=6, d=4, c=3, loss="svm_loss_naive"))
    with pytest.raises(UsageError, match="-p y_dev: y_dev holds integers .* data, not a parameter"):
        check(ip, "-f svm_loss_naive -p y_dev")
    with pytest.raises(UsageError, match="-p nothing: no variable 'nothing'"):
        check(ip, "-f svm_loss_naive -p nothing")


def test_the_calls_keyword_arguments_are_checked_as_given(ip):
    """K=3 in the call: the check draws three negative samples per evaluation, as the call did."""
    load(
        ip,
        "word2vec",
        replace=[
            (
                "    negatives = getNegativeSamples(outsideWordIdx, dataset, K)\n",
                "    negatives = getNegativeSamples(outsideWordIdx, dataset, K)\n    seen_K.append(K)\n",
            )
        ],
    )
    notebook_cell(
        ip,
        "seen_K = []\ndataset, dummy_vectors, dummy_tokens = getDummyObjects()\ncenterWordVec = np.random.randn(3)\n"
        "loss, gc, go = negSamplingLossAndGradient(centerWordVec, 2, dummy_vectors[5:], dataset, K=3)",
    )
    result = check(ip)
    assert clean(result), result
    assert "K=3" in result.functions
    assert set(ip.user_ns["seen_K"]) == {3}


@pytest.mark.parametrize("seed", [231, 0, 1, 2])
def test_cs231ns_own_batchnorm_cell_at_n_2_passes_without_a_warning(ip, seed):
    """At N=2 a batchnorm's curvature puts W2's central difference ~2e-7 off at the default step;
    it shrinks as h², so the estimate followed to a smaller step agrees."""
    load(ip, "cs231n_layers", "fc_net")
    notebook_cell(ip, FC_CELL.format(seed=seed, n=2, reg=3.14))
    result = check(ip, "model")
    assert clean(result), result


def test_the_most_recent_call_decides_between_a_loss_and_a_model(ip):
    load(ip, "linear_classifiers", "cs231n_layers")
    notebook_cell(ip, DEV_CELL.format(seed=0, n=8, d=5, c=3, loss="svm_loss_naive"))
    notebook_cell(
        ip,
        "model = TwoLayerNet(input_dim=5, hidden_dim=4, num_classes=3)\n"
        "X = rng.standard_normal((6, 5))\ny = rng.integers(3, size=6)\nloss, grads = model.loss(X, y)",
    )
    assert list(check(ip).table.index) == ["W1", "b1", "W2", "b2"]
    notebook_cell(ip, "loss, grad = svm_loss_naive(W, X_dev, y_dev, 0.05)")
    result = check(ip)
    assert list(result.table.index) == ["W"] and "svm_loss_naive(W, X_dev, y_dev, 0.05)" in result.functions


def test_bare_check_after_q2_neurals_own_gradcheck_naive_cell(ip):
    load(
        ip,
        "q2_neural",
        replace=[("gradb1 = d1.sum(axis=0, keepdims=True)", "gradb1 = d1.sum(axis=0, keepdims=True) * 0")],
    )
    notebook_cell(
        ip,
        "def gradcheck_naive(f, x):\n    return f(x)\n"
        + NEURAL_CELL.format(seed=2, n=10, dx=6)
        + "gradcheck_naive(lambda params: forward_backward_prop(data, labels, params, dimensions), params)",
    )
    result = check(ip)
    assert failing(result) == ["params"]
    assert "forward_backward_prop(data, labels, params, dimensions)" in result.functions
    worst = result.table.loc["params", "worst_index"][0]
    assert 6 * 5 <= worst < 6 * 5 + 5  # inside b1's part of the vector


def test_a_loss_that_changes_its_data_in_place_is_named_and_the_data_put_back(ip):
    load(
        ip,
        "linear_classifiers",
        replace=[
            (
                "    scores = X.dot(W)\n    scores -= scores.max(axis=1, keepdims=True)",
                "    X *= 1.01\n    scores = X.dot(W)\n    scores -= scores.max(axis=1, keepdims=True)",
            )
        ],
    )
    notebook_cell(ip, DEV_CELL.format(seed=0, n=8, d=5, c=3, loss="softmax_loss_vectorized"))
    before = ip.user_ns["X_dev"].copy()
    with pytest.raises(UsageError, match="softmax_loss_vectorized modified X_dev in place"):
        check(ip)
    assert ip.user_ns["X_dev"].tobytes() == before.tobytes()


def test_an_empty_batch_is_refused_by_name(ip):
    load(ip, "linear_classifiers")
    notebook_cell(ip, DEV_CELL.format(seed=0, n=8, d=5, c=3, loss="softmax_loss_vectorized"))
    notebook_cell(ip, "X_small, y_small = X_dev[:0], y_dev[:0]")
    with pytest.raises(UsageError, match=r"X_small is empty \(shape \(0, 5\)\)"):
        ip.run_cell_magic("gradcheck", "-o", "loss, grad = svm_loss_vectorized(W, X_small, y_small, 0.0)")


def test_a_cost_function_called_earlier_and_its_vector_assigned_in_the_cell_is_one_check(ip):
    """The history's call and the flat adapter's candidate for the cell's vector are not two checks."""
    load(ip, "flat_cost")
    flat = (
        "rng = np.random.default_rng(0)\ninput_layer_size, hidden_layer_size, num_labels = 3, 5, 3\n"
        "X = rng.standard_normal((7, 3))\ny = rng.integers(3, size=7)\nlambda_ = 1.0\n"
        "nn_params = 0.5 * rng.standard_normal(5 * 4 + 3 * 6)\n"
    )
    notebook_cell(
        ip,
        flat
        + "J, grad = nnCostFunction(nn_params, input_layer_size, hidden_layer_size, num_labels, X, y, lambda_)",
    )
    result = ip.run_cell_magic("gradcheck", "-o", flat)
    assert clean(result) and list(result.table.index) == ["nn_params"], result


@pytest.mark.parametrize("block", ["centerWordVec", "outsideVectors"])
def test_dash_p_checks_only_the_argument_it_names(ip, block):
    load(
        ip,
        "word2vec",
        replace=[("gradCenterVec = outsideVectors.T @ delta", "gradCenterVec = outsideVectors.T @ probs")],
    )
    notebook_cell(ip, W2V_CELL.format(dim=4, seed=0, loss="naiveSoftmaxLossAndGradient", idx=2))
    result = check(ip, f"-f naiveSoftmaxLossAndGradient -p {block}")
    assert list(result.table.index) == [block]
    assert result.failed == ([block] if block == "centerWordVec" else [])
