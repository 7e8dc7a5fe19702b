"""Build and execute the demo notebooks from the homework code the tests use.

    python demo_notebooks/build_demos.py        # rewrite every demo with fresh outputs

Each demo tells one story: write the code, run %%gradcheck, read the red row and
its hint, fix, rerun green.  ``EXPECTED`` (which blocks fail, check by check) is
what tests/test_notebooks.py asserts after executing the notebooks headless.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
HOMEWORK = HERE.parent / "tests" / "homework"

# notebook -> the failing blocks of each displayed check, in order
EXPECTED = {
    "01_fraud_detection.ipynb": [["b1", "W2"], []],
    "02_one_dimensional.ipynb": [["theta"], [], []],
    "03_l_layer.ipynb": [["W1", "b1", "W2", "b2"], []],
    "04_planar_tanh.ipynb": [["W1", "b1"], []],
    "05_l2_regularization.ipynb": [["W2"], []],
    "06_dropout.ipynb": [["W1", "b1"], []],
    "07_cs231n_layers.ipynb": [["w"], ["W1", "W2"], [], [], ["gamma"], []],
    "08_layer_objects.ipynb": [["dense1.weights"], ["dense1.weights", "dense2.weights"], [], []],
    "10_cs224n_word2vec.ipynb": [["outsideVectors"], [], []],
}


def functions(file: str) -> dict:
    """name -> source of every top-level function (and assignment) in a homework file."""
    text = (HOMEWORK / f"{file}.py").read_text()
    found = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found[node.name] = ast.get_source_segment(text, node)
        elif isinstance(node, ast.Assign):
            found[node.targets[0].id] = ast.get_source_segment(text, node)
    return found


def code(file: str, *names: str, replace=()) -> str:
    fns = functions(file)
    text = "\n\n\n".join(fns[n] for n in names)
    for old, new in replace:
        assert text.count(old) == 1, f"{old!r} not found once in {names}"
        text = text.replace(old, new)
    return text


SETUP = "%load_ext gradcheck_magic\nimport numpy as np"


def fraud_detection():
    bugs = [
        ("dW2 = 1. / m * np.dot(dZ2, A1.T)", "dW2 = 1. / m * np.dot(dZ2, A1.T) * 2"),
        ("db1 = 1. / m * np.sum(dZ1", "db1 = 4. / m * np.sum(dZ1"),
    ]
    return [
        new_markdown_cell(
            "# Gradient checking the fraud-detection net\n\n"
            "The course's 3-layer net `LINEAR->RELU->LINEAR->RELU->LINEAR->SIGMOID`. We write the "
            "forward and backward passes by hand, then let `%%gradcheck` prove the backward right "
            "— or point at the block that is wrong."
        ),
        new_code_cell(SETUP),
        new_markdown_cell("Helpers and the homework's test case:"),
        new_code_cell(code("seed_net", "sigmoid", "relu", "gradient_check_n_test_case")),
        new_code_cell(code("seed_net", "forward_propagation_n")),
        new_markdown_cell("Our first backward pass (it has the two bugs the homework plants):"),
        new_code_cell(code("seed_net", "backward_propagation_n", replace=bugs)),
        new_markdown_cell(
            "`%%gradcheck` runs the cell, finds `forward_propagation_n`, `backward_propagation_n` "
            "and `parameters` by itself, and checks every parameter block:"
        ),
        new_code_cell("%%gradcheck\nX, Y, parameters = gradient_check_n_test_case()"),
        new_markdown_cell(
            "Two red rows. **W2**: *analytic ≈ 2.00 × numeric* — a stray `* 2` in `dW2`. "
            "**b1**: *analytic ≈ 4.00 × numeric* — `4./m` where it should be `1./m`. "
            "The `suspect` column names each line (`backward_propagation_n:9` and `:14`), and the "
            "drill-down shows the function with those lines highlighted. "
            "Every other block passes, so the bugs are exactly there. Fix both:"
        ),
        new_code_cell(code("seed_net", "backward_propagation_n")),
        new_code_cell("%gradcheck"),
        new_markdown_cell(
            "All green. With the homework's own settings (`epsilon=1e-7`, a fixed absolute step) "
            "the overall difference reproduces the homework's figure:"
        ),
        new_code_cell(
            "%gradcheck_config epsilon=1e-7 threshold=2e-7\n"
            "result = %gradcheck -o -q\n"
            "print(f'difference = {result.difference:.10e}  passed = {result.passed}')\n"
            "%gradcheck_config --reset"
        ),
    ]


def one_dimensional():
    return [
        new_markdown_cell("# The 1-D warm-up: J(θ) = θx\n\nOne scalar parameter, named with flags."),
        new_code_cell(SETUP),
        new_code_cell(code("one_d", "forward_propagation")),
        new_code_cell(code("one_d", "backward_propagation", replace=[("dtheta = x", "dtheta = 2 * x")])),
        new_code_cell(
            "%%gradcheck --forward forward_propagation --backward backward_propagation --params theta\n"
            "x, theta = 2, 4"
        ),
        new_markdown_cell("*analytic ≈ 2.00 × numeric*: the derivative of θx is x, not 2x."),
        new_code_cell(code("one_d", "backward_propagation")),
        new_code_cell(
            "%gradcheck --forward forward_propagation --backward backward_propagation --params theta"
        ),
        new_markdown_cell("The homework's figure, with its fixed step ε = 1e-7 (about 2.9193358e-10):"),
        new_code_cell("%gradcheck -e 1e-7 -f forward_propagation -b backward_propagation -p theta"),
    ]


def l_layer():
    return story(
        "# The L-layer net\n\n`[LINEAR->RELU]*(L-1) -> LINEAR->SIGMOID` with the course's helper "
        "functions. `%%gradcheck` finds `L_model_forward`, `compute_cost` and `L_model_backward` "
        "among all the `*_forward`/`*_backward` helpers by itself.",
        [
            code(
                "l_layer",
                "sigmoid",
                "relu",
                "sigmoid_backward",
                "initialize_parameters_deep",
                "L_layer_test_case",
            ),
            code("l_layer", "linear_forward", "linear_activation_forward", "L_model_forward", "compute_cost"),
            code("l_layer", "linear_backward", "linear_activation_backward", "L_model_backward"),
        ],
        "A `relu_backward` that forgets to zero the gradient where the unit is off:",
        code("l_layer", "relu_backward", replace=[("    dZ[Z <= 0] = 0\n", "")]),
        "%%gradcheck\nX, Y, parameters = L_layer_test_case()",
        "The ReLU layers (W1, b1, W2, b2) are red and the sigmoid layer is fine; the hint points "
        "at units whose output is 0 — a missing ReLU mask. Put the mask back:",
        code("l_layer", "relu_backward"),
    )


def story(intro: str, code_cells: list, bug: str, buggy: str, check: str, reading: str, fixed: str) -> list:
    """The shape every demo shares: set up, the buggy backward, the red check, the fix, green."""
    return (
        [new_markdown_cell(intro), new_code_cell(SETUP)]
        + [new_code_cell(c) for c in code_cells]
        + [
            new_markdown_cell(bug),
            new_code_cell(buggy),
            new_code_cell(check),
            new_markdown_cell(reading),
            new_code_cell(fixed),
            new_code_cell("%gradcheck"),
        ]
    )


def planar():
    return story(
        "# The planar-data net\n\n`LINEAR->TANH->LINEAR->SIGMOID`; its backward takes "
        "`(parameters, cache, X, Y)` and the cost is a separate `compute_cost(A2, Y)`.",
        [
            code("planar", "sigmoid", "initialize_parameters", "planar_test_case"),
            code("planar", "forward_propagation", "compute_cost"),
        ],
        "A backward with the wrong tanh derivative (`1 - A1` instead of `1 - A1**2`):",
        code("planar", "backward_propagation", replace=[("(1 - np.power(A1, 2))", "(1 - A1)")]),
        "%%gradcheck\nX, Y, parameters = planar_test_case()",
        "Only the first layer is red: the error is in the hidden layer's activation derivative. "
        "Use `1 - np.power(A1, 2)`:",
        code("planar", "backward_propagation"),
    )


def l2():
    return story(
        "# L2 regularization\n\nThe cost gains `(λ/2m)·Σ‖W‖²`, so each `dW` gains `(λ/m)·W`. "
        "With `lambd` defined, `%%gradcheck` picks the regularized cost and backward.",
        [
            code(
                "three_layer",
                "sigmoid",
                "relu",
                "three_layer_test_case",
                "forward_propagation",
                "compute_cost",
            ),
            code("l2", "compute_cost_with_regularization"),
        ],
        "A backward that forgets the L2 term in `dW2`:",
        code("l2", "backward_propagation_with_regularization", replace=[(" + (lambd / m) * W2", "")]),
        "%%gradcheck\nX, Y, parameters = three_layer_test_case()\nlambd = 0.7",
        "The hint reads *analytic − numeric ≈ −λ/m × W2 — the L2 term (λ/m)·W2 is missing*. Add it back:",
        code("l2", "backward_propagation_with_regularization"),
    )


def dropout():
    return story(
        "# Dropout\n\nThe forward draws random masks. `%%gradcheck` replays numpy's random state "
        "before every evaluation, so every evaluation sees the same masks (seeded inside the "
        "forward or not), and leaves your random state as it was.",
        [
            code("three_layer", "sigmoid", "relu", "three_layer_test_case", "compute_cost"),
            code("dropout", "forward_propagation_with_dropout"),
        ],
        "A backward that forgets to rescale `dA1` by `keep_prob`:",
        code("dropout", "backward_propagation_with_dropout", replace=[("    dA1 = dA1 / keep_prob\n", "")]),
        "%%gradcheck\nX, Y, parameters = three_layer_test_case()\nkeep_prob = 0.86",
        "*analytic ≈ 0.86 × numeric* in the first layer: exactly `keep_prob`. Divide by it:",
        code("dropout", "backward_propagation_with_dropout"),
    )


AFFINE_BUG = [("dw = flat.T @ dout", "dw = flat.T @ dout / len(dout)")]
LAYER_CHECK = "%gradcheck -f affine_forward -b affine_backward"


def cs231n_layers():
    return [
        new_markdown_cell(
            "# cs231n-style layers and a model\n\n"
            "Each layer is a pair `out, cache = affine_forward(x, w, b)` / "
            "`dx, dw, db = affine_backward(dout, cache)`. `%%gradcheck` checks the vector-Jacobian "
            "product: the cost is Σ out·dout, every float array argument (`x`, `w`, `b`) is a block, "
            "paired with the backward's tuple by position; dicts such as `bn_param` pass through."
        ),
        new_code_cell(SETUP),
        new_code_cell(
            code(
                "cs231n_layers",
                "affine_forward",
                "relu_forward",
                "relu_backward",
                "affine_relu_forward",
                "affine_relu_backward",
                "softmax_loss",
            )
        ),
        new_markdown_cell(
            "An `affine_backward` that averages `dw` over the batch (the upstream gradient "
            "already carries the 1/N):"
        ),
        new_code_cell(code("cs231n_layers", "affine_backward", replace=AFFINE_BUG)),
        new_code_cell(
            f"%{LAYER_CHECK}\nrng = np.random.default_rng(0)\nx = rng.standard_normal((4, 2, 3))\n"
            "w = rng.standard_normal((6, 5))\nb = rng.standard_normal(5)\ndout = rng.standard_normal((4, 5))"
        ),
        new_markdown_cell(
            "Only `w` is red, and *analytic ≈ 0.25 × numeric*: one over the batch size. The model "
            "built from these layers shows it too — `%gradcheck model` checks every entry of "
            "`model.params` through `model.loss(X, y)`:"
        ),
        new_code_cell(code("cs231n_layers", "TwoLayerNet")),
        new_code_cell(
            "%%gradcheck model\nmodel = TwoLayerNet(input_dim=6, hidden_dim=7, num_classes=3)\n"
            "X = rng.standard_normal((4, 6))\ny = np.array([0, 2, 1, 2])"
        ),
        new_markdown_cell("Both weight matrices are red, the biases green. Fix `dw`:"),
        new_code_cell(code("cs231n_layers", "affine_backward")),
        new_code_cell(LAYER_CHECK),
        new_code_cell("%gradcheck model"),
        new_markdown_cell(
            "## Batch normalization\n\nTrain mode; `bn_param` is passed through (a fresh copy per "
            "call, so the running averages you hold are not touched). A `dgamma` that forgets "
            "the normalized input:"
        ),
        new_code_cell(code("cs231n_layers", "batchnorm_forward")),
        new_code_cell(
            code(
                "cs231n_layers",
                "batchnorm_backward",
                replace=[("dgamma = (dout * x_hat).sum(axis=0)", "dgamma = dout.sum(axis=0)")],
            )
        ),
        new_code_cell(
            "%%gradcheck -f batchnorm_forward -b batchnorm_backward\nx = 2 * rng.standard_normal((6, 4)) + 1\n"
            "gamma = rng.standard_normal(4)\nbeta = rng.standard_normal(4)\n"
            "bn_param = {'mode': 'train'}\ndout = rng.standard_normal((6, 4))"
        ),
        new_markdown_cell("`gamma` alone is red. Multiply by `x_hat`:"),
        new_code_cell(code("cs231n_layers", "batchnorm_backward")),
        new_code_cell("%gradcheck -f batchnorm_forward -b batchnorm_backward"),
    ]


def layer_objects():
    return [
        new_markdown_cell(
            "# Layer objects (nnfs style)\n\n`dense1 = Layer_Dense(2, 4)` holds `.weights` and "
            "`.biases`; `.forward(inputs)` stores `.output`, `.backward(dvalues)` stores `.dweights`, "
            "`.dbiases`, `.dinputs`. The methods read the object's own arrays, so `%gradcheck` "
            "perturbs them in place and puts every bit back afterwards."
        ),
        new_code_cell(SETUP),
        new_markdown_cell("A dense layer whose `dweights` carries a stray factor 0.5:"),
        new_code_cell(
            code(
                "nnfs_layers",
                "Layer_Dense",
                replace=[
                    (
                        "self.dweights = self.inputs.T @ dvalues",
                        "self.dweights = self.inputs.T @ dvalues * 0.5",
                    )
                ],
            )
        ),
        new_code_cell(code("nnfs_layers", "Activation_Tanh", "Loss_MeanSquared")),
        new_markdown_cell(
            "One layer against an upstream gradient (`dvalues` from the namespace when it has the "
            "output's shape, else a seeded random one — the table's caption says which):"
        ),
        new_code_cell(
            "%%gradcheck dense1\nrng = np.random.default_rng(0)\nX = rng.standard_normal((5, 2))\n"
            "y_true = rng.standard_normal((5, 3))\ndense1 = Layer_Dense(2, 4)\n"
            "dense2 = Layer_Dense(4, 3, seed=1)\nactivation1 = Activation_Tanh()\n"
            "loss_function = Loss_MeanSquared()\ndense1.forward(X)"
        ),
        new_markdown_cell(
            "The whole model, as plain functions that call the objects: the blocks are named "
            "`dense1.weights`, `dense1.biases`, …"
        ),
        new_code_cell(
            "def forward(X, y_true):\n    dense1.forward(X)\n    activation1.forward(dense1.output)\n"
            "    dense2.forward(activation1.output)\n    return loss_function.forward(dense2.output, y_true)\n\n\n"
            "def backward():\n    loss_function.backward()\n    dense2.backward(loss_function.dinputs)\n"
            "    activation1.backward(dense2.dinputs)\n    dense1.backward(activation1.dinputs)"
        ),
        new_code_cell("%gradcheck -f forward -b backward"),
        new_markdown_cell(
            "Every `weights` block is red at *analytic ≈ 0.5 × numeric*; the biases are right. "
            "Fix the class and build the layers again:"
        ),
        new_code_cell(code("nnfs_layers", "Layer_Dense")),
        new_code_cell(
            "%%gradcheck dense1\ndense1 = Layer_Dense(2, 4)\ndense2 = Layer_Dense(4, 3, seed=1)\n"
            "dense1.forward(X)"
        ),
        new_code_cell("%gradcheck -f forward -b backward"),
    ]


# ---- cs231n's recurrent layers: several outputs, one upstream gradient per output ---------------
RECURRENT = "09_cs231n_recurrent.ipynb"
RECURRENT_BUG = [("dprev_c = dc * f", "dprev_c = dnext_c * f")]
LSTM_STEP_TEST = """np.random.seed(231)
N, D, H = 4, 5, 6
x = np.random.randn(N, D)
prev_h = np.random.randn(N, H)
prev_c = np.random.randn(N, H)
Wx = np.random.randn(D, 4 * H)
Wh = np.random.randn(H, 4 * H)
b = np.random.randn(4 * H)

next_h, next_c, cache = lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
dnext_h = np.random.randn(*next_h.shape)
dnext_c = np.random.randn(*next_c.shape)
dx, dh, dc, dWx, dWh, db = lstm_step_backward(dnext_h, dnext_c, cache)"""
LSTM_TEST = """N, D, T, H = 2, 3, 6, 4
x = np.random.randn(N, T, D)
h0 = np.random.randn(N, H)
Wx = np.random.randn(D, 4 * H)
Wh = np.random.randn(H, 4 * H)
b = np.random.randn(4 * H)

out, cache = lstm_forward(x, h0, Wx, Wh, b)
dout = np.random.randn(*out.shape)
dx, dh0, dWx, dWh, db = lstm_backward(dout, cache)"""


def cs231n_recurrent():
    return [
        new_markdown_cell(
            "# cs231n's recurrent layers\n\n"
            "`next_h, next_c, cache = lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)` has two outputs, "
            "so `lstm_step_backward(dnext_h, dnext_c, cache)` takes one upstream gradient for each. "
            "`%gradcheck` checks the vector-Jacobian product with both: the cost is "
            "Σ next_h·dnext_h + next_c·dnext_c (`dnext_h` ↔ `next_h` by name), and every float array "
            "argument is a block, paired with the backward's tuple by position."
        ),
        new_code_cell(SETUP),
        new_code_cell(code("cs231n_rnn", "sigmoid", "lstm_step_forward", "lstm_forward", "lstm_backward")),
        new_markdown_cell(
            "A step backward whose cell-state gradient forgets the path through `next_h` "
            "(`dnext_c` where the total `dc` belongs):"
        ),
        new_code_cell(code("cs231n_rnn", "lstm_step_backward", replace=RECURRENT_BUG)),
        new_code_cell(LSTM_STEP_TEST),
        new_markdown_cell(
            "That is the notebook's own test cell. A bare `%gradcheck` right after it checks the pair it "
            "called, on the arrays it passed, with the upstream gradients its backward call passed:"
        ),
        new_code_cell("%gradcheck"),
        new_markdown_cell(
            "Only `prev_c` is red, and the suspect is the line that computes `dprev_c`. A check with "
            "`dnext_c` alone would not see it (the bug drops the path through `next_h`), and one with "
            "`dnext_h` alone would pass a backward that ignores `dnext_c`: both count. Use the total `dc`:"
        ),
        new_code_cell(code("cs231n_rnn", "lstm_step_backward")),
        new_code_cell("%gradcheck"),
        new_markdown_cell(
            "The whole sequence: `lstm_forward(x, h0, Wx, Wh, b)` returns `h, cache`, and "
            "`lstm_backward(dh, cache)` takes the upstream gradient of every hidden state (`dout` here):"
        ),
        new_code_cell(LSTM_TEST),
        new_code_cell("%gradcheck"),
    ]


EXPECTED[RECURRENT] = [["prev_c"], [], []]

W2V_BUG = [
    (
        "gradOutsideVecs[outsideWordIdx] += (s_o - 1.0) * centerWordVec",
        "gradOutsideVecs[outsideWordIdx] += (1.0 - s_o) * centerWordVec",
    )
]


def word2vec():
    """CS224n word2vec: a loss with one gradient per array argument, negative samples drawn from
    Python's random module (replayed for every evaluation, restored after)."""
    return story(
        "# CS224n word2vec\n\n`loss, gradCenterVec, gradOutsideVecs = negSamplingLossAndGradient("
        "centerWordVec, outsideWordIdx, outsideVectors, dataset)`: one gradient per float array argument. "
        "The integer `outsideWordIdx` is data, and the negative samples come from Python's `random` "
        "through `dataset.sampleTokenIdx()`: `%gradcheck` replays that generator for every evaluation "
        "(as the course's own `gradcheck_naive` does) and leaves it as it was.",
        [
            "import random\n\n\n"
            + code("word2vec", "sigmoid", "softmax", "normalizeRows", "getNegativeSamples")
            + "\n\n\n"
            + code("word2vec", "DummyDataset", "getDummyObjects"),
        ],
        "A negative-sampling loss whose gradient for the true outside word has its sign flipped:",
        code("word2vec", "negSamplingLossAndGradient", replace=W2V_BUG),
        "%%gradcheck\ndataset, dummy_vectors, dummy_tokens = getDummyObjects()\n"
        "centerWordVec = np.random.randn(3)\n"
        "loss, gradCenterVec, gradOutsideVecs = negSamplingLossAndGradient(centerWordVec, 1, "
        "dummy_vectors[5:], dataset)",
        "The check took the call in the cell: `centerWordVec` passes, `outsideVectors` is red and its "
        "suspect line is the one to fix. The derivative of `-log σ(u_o·v_c)` is `(σ - 1)·v_c`:",
        code("word2vec", "negSamplingLossAndGradient"),
    ) + [
        new_markdown_cell(
            "The skip-gram model over both word-vector matrices, sliced as the course's test slices them: "
            "rows `centerWordVectors` and `outsideVectors`."
        ),
        new_code_cell(code("word2vec", "naiveSoftmaxLossAndGradient", "skipgram")),
        new_code_cell(
            "%%gradcheck\nloss, gin, gout = skipgram('c', 3, ['a', 'b', 'e', 'd', 'b', 'c'], dummy_tokens, "
            "dummy_vectors[:5, :], dummy_vectors[5:, :], dataset, negSamplingLossAndGradient)"
        ),
    ]


BUILDERS = {
    "01_fraud_detection.ipynb": fraud_detection,
    "02_one_dimensional.ipynb": one_dimensional,
    "03_l_layer.ipynb": l_layer,
    "04_planar_tanh.ipynb": planar,
    "05_l2_regularization.ipynb": l2,
    "06_dropout.ipynb": dropout,
    "07_cs231n_layers.ipynb": cs231n_layers,
    "08_layer_objects.ipynb": layer_objects,
    "10_cs224n_word2vec.ipynb": word2vec,
}
BUILDERS[RECURRENT] = cs231n_recurrent


def build(name: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=BUILDERS[name]())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main(names=None) -> int:
    sys.path.insert(0, str(HERE.parent))
    from gradcheck_magic.notebook_cli import collect, execute

    status = 0
    for name in names or BUILDERS:
        path = HERE / name
        nbformat.write(build(name), str(path))
        nb, error = execute(path, timeout=300)
        failed = [r["failed"] for _, r, _ in collect(nb)]
        ok = error is None and failed == EXPECTED[name]
        status |= not ok
        nbformat.write(nb, str(path))
        print(f"{name}: {'ok' if ok else 'UNEXPECTED'} {failed} {error or ''}")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
