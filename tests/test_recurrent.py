"""Recurrent layers, through the real magic: cs231n's layer functions with several outputs and one
upstream gradient per output (cost = Σ_k out_k·dout_k), and Coursera C5W1's dict-in/dict-out cells
(``parameters[k]`` ↔ ``gradients["d" + k]``, an array argument ``xt`` ↔ ``gradients["dxt"]``).
Correct code passes cleanly at two sizes and three seeds; a planted single-line bug fails exactly its
blocks, with its line as the top suspect; a bare ``%gradcheck`` right after cs231n's own gradient-test
cell checks what that cell tested."""

import numpy as np
import pytest
from conftest import check, load, run, source

SEEDS = (0, 1, 2)

# ---- cs231n: the notebook's gradient-test cells, in its shape (a seeded draw of the arrays, the
# forward's call, an upstream gradient, lambdas handed to the numerical helper, the backward's call) --

RNN_STEP_CELL = """
np.random.seed({seed})
N, D, H = {n}, 5, 6
x = np.random.randn(N, D)
h = np.random.randn(N, H)
Wx = np.random.randn(D, H)
Wh = np.random.randn(H, H)
b = np.random.randn(H)
out, cache = rnn_step_forward(x, h, Wx, Wh, b)
dnext_h = np.random.randn(*out.shape)
fx = lambda x: rnn_step_forward(x, h, Wx, Wh, b)[0]
fh = lambda prev_h: rnn_step_forward(x, h, Wx, Wh, b)[0]
dx_num = eval_numerical_gradient_array(fx, x, dnext_h)
dprev_h_num = eval_numerical_gradient_array(fh, h, dnext_h)
dx, dprev_h, dWx, dWh, db = rnn_step_backward(dnext_h, cache)
print("dx error: ", rel_error(dx_num, dx))
print("dprev_h error: ", rel_error(dprev_h_num, dprev_h))
"""

RNN_CELL = """
np.random.seed({seed})
N, D, T, H = {n}, 3, 6, 5
x = np.random.randn(N, T, D)
h0 = np.random.randn(N, H)
Wx = np.random.randn(D, H)
Wh = np.random.randn(H, H)
b = np.random.randn(H)
out, cache = rnn_forward(x, h0, Wx, Wh, b)
dout = np.random.randn(*out.shape)
dx, dh0, dWx, dWh, db = rnn_backward(dout, cache)
fh0 = lambda h0: rnn_forward(x, h0, Wx, Wh, b)[0]
dh0_num = eval_numerical_gradient_array(fh0, h0, dout)
print("dh0 error: ", rel_error(dh0_num, dh0))
"""

EMBEDDING_CELL = """
np.random.seed({seed})
N, T, V, D = {n}, 3, 5, 6
x = np.random.randint(V, size=(N, T))
W = np.random.randn(V, D)
out, cache = word_embedding_forward(x, W)
dout = np.random.randn(*out.shape)
dW = word_embedding_backward(dout, cache)
f = lambda W: word_embedding_forward(x, W)[0]
dW_num = eval_numerical_gradient_array(f, W, dout)
print("dW error: ", rel_error(dW, dW_num))
"""

TEMPORAL_AFFINE_CELL = """
np.random.seed({seed})
N, T, D, M = {n}, 3, 4, 5
x = np.random.randn(N, T, D)
w = np.random.randn(D, M)
b = np.random.randn(M)
out, cache = temporal_affine_forward(x, w, b)
dout = np.random.randn(*out.shape)
fw = lambda w: temporal_affine_forward(x, w, b)[0]
dw_num = eval_numerical_gradient_array(fw, w, dout)
dx, dw, db = temporal_affine_backward(dout, cache)
print("dw error: ", rel_error(dw_num, dw))
"""

LSTM_STEP_CELL = """
np.random.seed({seed})
N, D, H = {n}, 5, 6
x = np.random.randn(N, D)
prev_h = np.random.randn(N, H)
prev_c = np.random.randn(N, H)
Wx = np.random.randn(D, 4 * H)
Wh = np.random.randn(H, 4 * H)
b = np.random.randn(4 * H)
next_h, next_c, cache = lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
dnext_h = np.random.randn(*next_h.shape)
dnext_c = np.random.randn(*next_c.shape)
fx_h = lambda x: lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)[0]
fx_c = lambda x: lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)[1]
num_grad = eval_numerical_gradient_array
dx_num = num_grad(fx_h, x, dnext_h) + num_grad(fx_c, x, dnext_c)
dx, dh, dc, dWx, dWh, db = lstm_step_backward(dnext_h, dnext_c, cache)
print("dx error: ", rel_error(dx_num, dx))
"""

LSTM_CELL = """
np.random.seed({seed})
N, D, T, H = {n}, 3, 5, 4
x = np.random.randn(N, T, D)
h0 = np.random.randn(N, H)
Wx = np.random.randn(D, 4 * H)
Wh = np.random.randn(H, 4 * H)
b = np.random.randn(4 * H)
out, cache = lstm_forward(x, h0, Wx, Wh, b)
dout = np.random.randn(*out.shape)
dx, dh0, dWx, dWh, db = lstm_backward(dout, cache)
fb = lambda b: lstm_forward(x, h0, Wx, Wh, b)[0]
db_num = eval_numerical_gradient_array(fb, b, dout)
print("db error: ", rel_error(db_num, db))
"""

# pair -> (test cell, the rows, the call the caption names)
CS231N = {
    "rnn_step": (RNN_STEP_CELL, ["x", "prev_h", "Wx", "Wh", "b"], "rnn_step_forward(x, h, Wx, Wh, b)"),
    "rnn": (RNN_CELL, ["x", "h0", "Wx", "Wh", "b"], "rnn_forward(x, h0, Wx, Wh, b)"),
    "word_embedding": (EMBEDDING_CELL, ["W"], "word_embedding_forward(x, W)"),
    "temporal_affine": (TEMPORAL_AFFINE_CELL, ["x", "w", "b"], "temporal_affine_forward(x, w, b)"),
    "lstm_step": (
        LSTM_STEP_CELL,
        ["x", "prev_h", "prev_c", "Wx", "Wh", "b"],
        "lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)",
    ),
    "lstm": (LSTM_CELL, ["x", "h0", "Wx", "Wh", "b"], "lstm_forward(x, h0, Wx, Wh, b)"),
}


def cs231n(ip, replace=()):
    load(ip, "cs231n_rnn", "cs231n_gradient_check", replace=replace)


def history_cell(ip, code):
    """Run a cell as the notebook does, into ``In`` (the call the bare %gradcheck reads)."""
    result = ip.run_cell(code, store_history=True)
    result.raise_error()


def flags(pair):
    return f"-f {pair}_forward -b {pair}_backward"


@pytest.mark.parametrize("mode", ["auto", "fast"])
@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("pair", sorted(CS231N))
def test_bare_gradcheck_after_cs231n_test_cell_passes_cleanly(ip, pair, seed, n, mode):
    cell, rows, call = CS231N[pair]
    cs231n(ip)
    history_cell(ip, cell.format(seed=seed, n=n))
    result = check(ip, f"--mode {mode}")
    assert result.passed and not result.warned, result
    assert list(result.table.index) == rows
    assert call in result.functions, result.functions
    assert " in cell [" in result.plan.source and "from: " in result.text(), result.plan


@pytest.mark.parametrize("pair", sorted(CS231N))
def test_flags_name_the_recurrent_pair_and_pass(ip, pair):
    cell, rows, _ = CS231N[pair]
    cs231n(ip)
    run(ip, cell.format(seed=3, n=3))
    if pair == "rnn_step":  # the notebook's cell names it h; without its call the name must fit
        run(ip, "prev_h = h")
    result = check(ip, flags(pair))
    assert result.passed and not result.warned, result
    assert list(result.table.index) == rows


def test_every_upstream_gradient_enters_the_cost_and_the_caption_says_which(ip):
    cs231n(ip)
    history_cell(ip, LSTM_STEP_CELL.format(seed=0, n=3))
    result = check(ip)
    assert "Σ next_h·dnext_h + next_c·dnext_c" in result.functions, result.functions
    assert "dnext_h, dnext_c from your call" in result.functions


def test_lstm_step_ignoring_dnext_c_fails_every_block(ip):
    # with only next_h·dnext_h as the cost this bug would pass: dnext_c must count
    cs231n(ip, replace=[("dc = dnext_c + dnext_h * o", "dc = dnext_h * o")])
    history_cell(ip, LSTM_STEP_CELL.format(seed=1, n=3))
    result = check(ip)
    assert sorted(result.failed) == sorted(["x", "prev_h", "prev_c", "Wx", "Wh", "b"]), result


def test_a_missing_upstream_gradient_is_seeded_random_and_said(ip):
    cs231n(ip)
    run(ip, LSTM_STEP_CELL.format(seed=2, n=3))
    del ip.user_ns["dnext_c"]
    result = check(ip, flags("lstm_step"))
    assert result.passed and not result.warned, result
    assert "dnext_c: seeded random (3, 6)" in result.functions, result.functions


# (pair, planted change, failing blocks, the suspect line or None)
CS231N_BUGS = {
    "rnn_step_untransposed_Wh": (
        "rnn_step",
        ("dprev_h = dz.dot(Wh.T)", "dprev_h = dz.dot(Wh)"),
        ["prev_h"],
        "dprev_h = dz.dot(Wh)",
    ),
    "rnn_overwritten_dWh": (
        "rnn",
        (
            "dx[:, t, :] = dx_t\n        dWx += dWx_t\n        dWh += dWh_t",
            "dx[:, t, :] = dx_t\n        dWx += dWx_t\n        dWh = dWh_t",
        ),
        ["Wh"],
        "dWh = dWh_t",
    ),
    "embedding_repeated_words_lost": (
        "word_embedding",
        ("np.add.at(dW, x, dout)", "dW[x] += dout"),
        ["W"],
        None,  # one block: no passing block rules a line out, and no line is named by a guess
    ),
    "temporal_affine_db_averaged": (
        "temporal_affine",
        ("db = dout.sum(axis=(0, 1))", "db = dout.mean(axis=(0, 1))"),
        ["b"],
        "db = dout.mean(axis=(0, 1))",
    ),
    "lstm_step_dprev_c_without_dnext_h": (
        "lstm_step",
        ("dprev_c = dc * f", "dprev_c = dnext_c * f"),
        ["prev_c"],
        "dprev_c = dnext_c * f",
    ),
    "lstm_overwritten_db": (
        "lstm",
        (
            "= step\n        dWx += dWx_t\n        dWh += dWh_t\n        db += db_t",
            "= step\n        dWx += dWx_t\n        dWh += dWh_t\n        db = db_t",
        ),
        ["b"],
        "db = db_t",
    ),
}


@pytest.mark.parametrize("mode", ["full", "fast"])
@pytest.mark.parametrize("case", sorted(CS231N_BUGS))
def test_planted_cs231n_bug_fails_exactly_its_blocks_with_its_line(ip, case, mode):
    pair, change, expected, line = CS231N_BUGS[case]
    cs231n(ip, replace=[change])
    history_cell(ip, CS231N[pair][0].format(seed=0, n=4))
    result = check(ip, f"--mode {mode}")
    assert sorted(result.failed) == sorted(expected), result
    assert all(result.table.loc[b, "status"] == "pass" for b in result.table.index if b not in expected)
    if line and mode == "full":
        for block in expected:
            assert result.suspects(block)[0].line == line, result.suspects(block)


SOFTMAX_CELL = """
np.random.seed({seed})
N, T, V = {n}, 4, 5
x = np.random.randn(N, T, V)
y = np.random.randint(V, size=(N, T))
mask = np.random.rand(N, T) > 0.5
loss, dx = temporal_softmax_loss(x, y, mask, verbose=False)
dx_num = eval_numerical_gradient(lambda x: temporal_softmax_loss(x, y, mask)[0], x, verbose=False)
"""


@pytest.mark.parametrize("n", [3, 6])
@pytest.mark.parametrize("seed", SEEDS)
def test_temporal_softmax_loss_checks_x_with_y_and_mask_as_data(ip, seed, n):
    cs231n(ip)
    history_cell(ip, SOFTMAX_CELL.format(seed=seed, n=n))
    result = check(ip, "-f temporal_softmax_loss")
    assert result.passed and not result.warned, result
    assert list(result.table.index) == ["x"]


def test_temporal_softmax_loss_ignoring_the_mask_fails_x(ip):
    cs231n(ip, replace=[("    dx_flat *= flat_mask[:, None]\n", "")])
    history_cell(ip, SOFTMAX_CELL.format(seed=0, n=5))
    assert check(ip, "-f temporal_softmax_loss").failed == ["x"]


def test_integer_word_indices_are_data_and_never_perturbed(ip):
    cs231n(ip)
    history_cell(ip, EMBEDDING_CELL.format(seed=0, n=6))
    before = ip.user_ns["x"].copy()
    result = check(ip)
    assert list(result.table.index) == ["W"]
    assert np.array_equal(ip.user_ns["x"], before) and ip.user_ns["x"].dtype == before.dtype


def test_recurrent_check_loses_nothing(ip):
    cs231n(ip)
    history_cell(ip, LSTM_STEP_CELL.format(seed=4, n=3))
    names = ("x", "prev_h", "prev_c", "Wx", "Wh", "b", "dnext_h", "dnext_c")
    before = {k: (ip.user_ns[k].dtype, ip.user_ns[k].tobytes()) for k in names}
    state = np.random.get_state()[1].copy()
    assert check(ip).passed
    assert {k: (ip.user_ns[k].dtype, ip.user_ns[k].tobytes()) for k in names} == before
    assert np.array_equal(np.random.get_state()[1], state)


# ---- Coursera C5W1: the notebook's test cells (`_tmp` names), and the older `xt, a_prev` names -----

C5_RNN_CELL = """
np.random.seed({seed})
xt_tmp = np.random.randn(3, {m})
a_prev_tmp = np.random.randn(5, {m})
parameters_tmp = {{}}
parameters_tmp['Wax'] = np.random.randn(5, 3)
parameters_tmp['Waa'] = np.random.randn(5, 5)
parameters_tmp['Wya'] = np.random.randn(2, 5)
parameters_tmp['ba'] = np.random.randn(5, 1)
parameters_tmp['by'] = np.random.randn(2, 1)
a_next_tmp, yt_tmp, cache_tmp = rnn_cell_forward(xt_tmp, a_prev_tmp, parameters_tmp)
da_next_tmp = np.random.randn(5, {m})
gradients_tmp = rnn_cell_backward(da_next_tmp, cache_tmp)
print('gradients["dxt"][1][2] =', gradients_tmp["dxt"][1][2])
print('gradients["dxt"].shape =', gradients_tmp["dxt"].shape)
"""

C5_RNN_SEQ_CELL = """
np.random.seed({seed})
x_tmp = np.random.randn(3, {m}, 4)
a0_tmp = np.random.randn(5, {m})
parameters_tmp = {{}}
parameters_tmp['Wax'] = np.random.randn(5, 3)
parameters_tmp['Waa'] = np.random.randn(5, 5)
parameters_tmp['Wya'] = np.random.randn(2, 5)
parameters_tmp['ba'] = np.random.randn(5, 1)
parameters_tmp['by'] = np.random.randn(2, 1)
a_tmp, y_tmp, caches_tmp = rnn_forward(x_tmp, a0_tmp, parameters_tmp)
da_tmp = np.random.randn(5, {m}, 4)
gradients_tmp = rnn_backward(da_tmp, caches_tmp)
print('gradients["dx"][1][2] =', gradients_tmp["dx"][1][2])
"""

LSTM_PARAMETERS = """
parameters_tmp = {{}}
parameters_tmp['Wf'] = np.random.randn(5, 5 + 3)
parameters_tmp['bf'] = np.random.randn(5, 1)
parameters_tmp['Wi'] = np.random.randn(5, 5 + 3)
parameters_tmp['bi'] = np.random.randn(5, 1)
parameters_tmp['Wo'] = np.random.randn(5, 5 + 3)
parameters_tmp['bo'] = np.random.randn(5, 1)
parameters_tmp['Wc'] = np.random.randn(5, 5 + 3)
parameters_tmp['bc'] = np.random.randn(5, 1)
parameters_tmp['Wy'] = np.random.randn(2, 5)
parameters_tmp['by'] = np.random.randn(2, 1)
"""

C5_LSTM_CELL = (
    """
np.random.seed({seed})
xt_tmp = np.random.randn(3, {m})
a_prev_tmp = np.random.randn(5, {m})
c_prev_tmp = np.random.randn(5, {m})
"""
    + LSTM_PARAMETERS
    + """
a_next_tmp, c_next_tmp, yt_tmp, cache_tmp = lstm_cell_forward(xt_tmp, a_prev_tmp, c_prev_tmp, parameters_tmp)
da_next_tmp = np.random.randn(5, {m})
dc_next_tmp = np.random.randn(5, {m})
gradients_tmp = lstm_cell_backward(da_next_tmp, dc_next_tmp, cache_tmp)
print('gradients["dc_prev"].shape =', gradients_tmp["dc_prev"].shape)
"""
)

C5_LSTM_SEQ_CELL = (
    """
np.random.seed({seed})
x_tmp = np.random.randn(3, {m}, 4)
a0_tmp = np.random.randn(5, {m})
"""
    + LSTM_PARAMETERS
    + """
a_tmp, y_tmp, c_tmp, caches_tmp = lstm_forward(x_tmp, a0_tmp, parameters_tmp)
da_tmp = np.random.randn(5, {m}, 4)
gradients_tmp = lstm_backward(da_tmp, caches_tmp)
print('gradients["dWf"].shape =', gradients_tmp["dWf"].shape)
"""
)

LSTM_ROWS = ["Wf", "bf", "Wi", "bi", "Wo", "bo", "Wc", "bc"]
# cell -> (test cell, the rows, the call the caption names, the parameters the cost does not read)
C5W1 = {
    "rnn_cell": (
        C5_RNN_CELL,
        ["xt", "a_prev", "Wax", "Waa", "ba"],
        "rnn_cell_forward(xt_tmp, a_prev_tmp, parameters_tmp)",
        "Wya, by",
    ),
    "rnn": (
        C5_RNN_SEQ_CELL,
        ["x", "a0", "Wax", "Waa", "ba"],
        "rnn_forward(x_tmp, a0_tmp, parameters_tmp)",
        "Wya, by",
    ),
    "lstm_cell": (
        C5_LSTM_CELL,
        ["xt", "a_prev", "c_prev", *LSTM_ROWS],
        "lstm_cell_forward(xt_tmp, a_prev_tmp, c_prev_tmp, parameters_tmp)",
        "Wy, by",
    ),
    "lstm": (
        C5_LSTM_SEQ_CELL,
        ["x", "a0", *LSTM_ROWS],
        "lstm_forward(x_tmp, a0_tmp, parameters_tmp)",
        "Wy, by",
    ),
}


def c5w1(ip, replace=()):
    load(ip, "c5w1_rnn", replace=replace)


@pytest.mark.parametrize("mode", ["auto", "fast"])
@pytest.mark.parametrize("m", [4, 10])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cell", sorted(C5W1))
def test_c5w1_cell_after_its_test_cell_passes_cleanly(ip, cell, seed, m, mode):
    code, rows, call, unread = C5W1[cell]
    c5w1(ip)
    history_cell(ip, code.format(seed=seed, m=m))
    result = check(ip, f"--mode {mode}")
    assert result.passed and not result.warned, result
    assert list(result.table.index) == rows
    assert call in result.functions
    assert unread in result.functions  # the prediction's weights: not read by the cost, said so


def test_c5w1_flags_with_the_course_names_pair_parameters_with_d_keys(ip):
    c5w1(ip)
    run(ip, C5_RNN_CELL.format(seed=0, m=6).replace("_tmp", ""))
    result = check(ip, "-f rnn_cell_forward -b rnn_cell_backward")
    assert result.passed and not result.warned, result
    assert list(result.table.index) == ["xt", "a_prev", "Wax", "Waa", "ba"]
    assert "Σ a_next·da_next" in result.functions and "da_next from the namespace" in result.functions


# (cell, planted change, failing blocks, the suspect line or None)
C5W1_BUGS = {
    "rnn_cell_untransposed_Waa": (
        "rnn_cell",
        ("da_prev = np.dot(Waa.T, dtanh)", "da_prev = np.dot(Waa, dtanh)"),
        ["a_prev"],
        "da_prev = np.dot(Waa, dtanh)",
    ),
    "rnn_overwritten_dWaa": ("rnn", ("dWaa += dWaat", "dWaa = dWaat"), ["Waa"], "dWaa = dWaat"),
    "lstm_cell_dc_prev_from_dc_next": (
        "lstm_cell",
        ("dc_prev = dc * ft", "dc_prev = dc_next * ft"),
        ["c_prev"],
        "dc_prev = dc_next * ft",
    ),
    "lstm_cell_forget_gate_without_its_derivative": (
        "lstm_cell",
        ("dft = dc * c_prev * ft * (1 - ft)", "dft = dc * c_prev * ft"),
        ["xt", "a_prev", "Wf", "bf"],
        "dft = dc * c_prev * ft",
    ),
    "lstm_cell_state_gradient_dropped": (
        "lstm",
        (
            "lstm_cell_backward(da[:, :, t] + da_prevt, dc_prevt,",
            "lstm_cell_backward(da[:, :, t] + da_prevt, 0 * dc_prevt,",
        ),
        ["x", "a0", *LSTM_ROWS],
        None,  # every block fails: nothing passing rules a line out, and none is named by a guess
    ),
}


@pytest.mark.parametrize("mode", ["full", "fast"])
@pytest.mark.parametrize("case", sorted(C5W1_BUGS))
def test_planted_c5w1_bug_fails_exactly_its_blocks_with_its_line(ip, case, mode):
    cell, change, expected, line = C5W1_BUGS[case]
    c5w1(ip, replace=[change])
    history_cell(ip, C5W1[cell][0].format(seed=1, m=6))
    result = check(ip, f"--mode {mode}")
    assert sorted(result.failed) == sorted(expected), result
    assert all(result.table.loc[b, "status"] == "pass" for b in result.table.index if b not in expected)
    if line and mode == "full":
        for block in expected:
            assert result.suspects(block)[0].line == line, result.suspects(block)


def test_c5w1_gradient_missing_from_the_dict_fails_its_block(ip):
    c5w1(
        ip,
        replace=[('"da_prev": da_prev, "dWax": dWax, "dWaa": dWaa, ', '"da_prev": da_prev, "dWax": dWax, ')],
    )
    history_cell(ip, C5_RNN_CELL.format(seed=2, m=5))
    result = check(ip)
    assert result.failed == ["Waa"], result
    assert "missing gradient dWaa" in result.table.loc["Waa", "note"]


def test_recurrent_demo_shows_both_upstream_gradients_and_the_dprev_c_line():
    from pathlib import Path

    import nbformat

    path = Path(__file__).resolve().parent.parent / "demo_notebooks" / "09_cs231n_recurrent.ipynb"
    stored = nbformat.read(str(path), as_version=4)
    text = " ".join(
        o.get("data", {}).get("text/plain", "") + o.get("text", "")
        for c in stored.cells
        for o in c.get("outputs", [])
    )
    text = " ".join(text.split())
    assert "Σ next_h·dnext_h + next_c·dnext_c" in text
    assert "suspect: lstm_step_backward:9 dprev_c = dnext_c * f" in text


def test_c5w1_check_keeps_the_parameters_dict_its_arrays_and_the_random_state(ip):
    c5w1(ip)
    history_cell(ip, C5_LSTM_CELL.format(seed=3, m=4))
    params = ip.user_ns["parameters_tmp"]
    held = dict(params)
    before = {k: (v.dtype, v.tobytes()) for k, v in params.items()}
    arrays = {k: ip.user_ns[k].tobytes() for k in ("xt_tmp", "a_prev_tmp", "c_prev_tmp", "da_next_tmp")}
    state = np.random.get_state()[1].copy()
    assert check(ip).passed
    assert ip.user_ns["parameters_tmp"] is params and list(params) == list(held)
    assert all(params[k] is held[k] for k in held)  # the same array objects, none added
    assert {k: (v.dtype, v.tobytes()) for k, v in params.items()} == before
    assert {k: ip.user_ns[k].tobytes() for k in arrays} == arrays
    assert np.array_equal(np.random.get_state()[1], state)


def test_float32_arrays_are_checked_in_float64_and_left_float32(ip):
    cs231n(ip)
    history_cell(ip, LSTM_STEP_CELL.format(seed=5, n=3) + "Wx = Wx.astype(np.float32)\n")
    result = check(ip, flags("lstm_step"))
    assert result.passed and ip.user_ns["Wx"].dtype == np.float32, result
    assert "float32 parameters checked in float64" in result.table.loc["Wx", "note"]


def test_a_backward_that_raises_is_the_users_error_and_nothing_is_lost(ip):
    cs231n(ip, replace=[("    tanh_c = np.tanh(next_c)\n", "    tanh_c = np.tanh(next_c)\n    1 / 0\n")])
    history_cell(
        ip,
        LSTM_STEP_CELL.replace("dx, dh, dc, dWx, dWh, db = lstm_step_backward", "# ")
        .replace("print(", "# (")
        .format(seed=6, n=3),
    )
    before = ip.user_ns["prev_c"].tobytes()
    with pytest.raises(ZeroDivisionError):
        check(ip)
    assert ip.user_ns["prev_c"].tobytes() == before


def test_more_upstream_gradients_than_outputs_is_refused_by_name(ip):
    from IPython.core.error import UsageError

    cs231n(ip)
    run(ip, "def lstm_step_backward(dnext_h, dnext_c, dnext_z, cache):\n    return None\n")
    run(ip, LSTM_STEP_CELL.format(seed=0, n=2).split("next_h, next_c, cache =")[0])
    with pytest.raises(
        UsageError, match=r"lstm_step_backward\(dnext_h, dnext_c, dnext_z, cache\) takes 3 upstream"
    ):
        check(ip, flags("lstm_step"))


def test_gradcheck_cell_holding_the_c5w1_test_cell_checks_its_call(ip):
    c5w1(ip, replace=[("dc_prev = dc * ft", "dc_prev = dc_next * ft")])
    ran = ip.run_cell("%%gradcheck -o\n" + C5_LSTM_CELL.format(seed=4, m=3), store_history=True)
    ran.raise_error()
    result = ran.result
    assert result.failed == ["c_prev"], result
    assert result.plan.source.startswith("lstm_cell_forward(xt_tmp, a_prev_tmp, c_prev_tmp, parameters_tmp)")


def test_gradcheck_cell_assigning_the_lstm_arrays_finds_the_step_pair(ip):
    cs231n(ip)
    body = LSTM_STEP_CELL.format(seed=5, n=2).split("next_h, next_c, cache =")[0]
    result = ip.run_cell_magic("gradcheck", "-o", body)
    assert result.passed and not result.warned, result
    assert list(result.table.index) == ["x", "prev_h", "prev_c", "Wx", "Wh", "b"]
    assert "dnext_h: seeded random (2, 6)" in result.functions, result.functions


def test_flags_after_the_test_cell_take_its_arguments(ip):
    cs231n(ip)
    history_cell(ip, RNN_STEP_CELL.format(seed=1, n=3))  # passes h, not prev_h
    result = check(ip, flags("rnn_step"))
    assert result.passed and list(result.table.index) == ["x", "prev_h", "Wx", "Wh", "b"], result
    assert "rnn_step_forward(x, h, Wx, Wh, b)" in result.functions


def test_a_missing_argument_is_named_with_its_look_alike(ip):
    from IPython.core.error import UsageError

    c5w1(ip)
    run(ip, C5_RNN_CELL.format(seed=0, m=3))  # not in the history: bound by name, and xt is xt_tmp
    with pytest.raises(UsageError, match=r"rnn_cell_forward needs `xt`.*xt_tmp"):
        check(ip, "-f rnn_cell_forward -b rnn_cell_backward")


def test_p_chooses_which_blocks_of_a_recurrent_pair_to_check(ip):
    from IPython.core.error import UsageError

    cs231n(ip, replace=[("dprev_c = dc * f", "dprev_c = dnext_c * f")])
    history_cell(ip, LSTM_STEP_CELL.format(seed=0, n=3))
    result = check(ip, flags("lstm_step") + " -p Wx,prev_c")
    assert list(result.table.index) == ["prev_c", "Wx"] and result.failed == ["prev_c"], result
    with pytest.raises(UsageError, match=r"-p/--params W: lstm_step_forward's blocks are x, prev_h"):
        check(ip, flags("lstm_step") + " -p W")


def test_zero_gradients_returned_for_the_prediction_weights_are_checked_against_zero(ip):
    c5w1(
        ip,
        replace=[
            (
                '"dba": dba}\n    return gradients\n\n\ndef rnn_backward',
                '"dba": dba, "dWya": 0 * parameters["Wya"], "dby": 0 * parameters["by"]}\n'
                "    return gradients\n\n\ndef rnn_backward",
            )
        ],
    )
    history_cell(ip, C5_RNN_CELL.format(seed=0, m=6))
    result = check(ip)
    assert result.passed and list(result.table.index) == ["xt", "a_prev", "Wax", "Waa", "Wya", "ba", "by"], (
        result
    )


def test_an_empty_batch_is_refused_by_name(ip):
    from IPython.core.error import UsageError

    cs231n(ip)
    run(ip, LSTM_STEP_CELL.format(seed=0, n=3).split("next_h, next_c, cache =")[0] + "x = x[:0]\n")
    with pytest.raises(UsageError, match=r"x is empty \(shape \(0, 5\)\)"):
        check(ip, flags("lstm_step"))


def test_a_forward_argument_named_x_t_pairs_with_the_courses_dxt_key(ip):
    # students rename xt to x_t in the forward and keep the notebook's "dxt" key in the backward
    c5w1(
        ip,
        replace=[
            ("def rnn_cell_forward(xt,", "def rnn_cell_forward(x_t,"),
            ("np.dot(Wax, xt) + ba)\n    yt_pred", "np.dot(Wax, x_t) + ba)\n    yt_pred"),
            ("cache = (a_next, a_prev, xt, parameters)", "cache = (a_next, a_prev, x_t, parameters)"),
        ],
    )
    history_cell(ip, C5_RNN_CELL.format(seed=2, m=4))
    result = check(ip)
    assert result.passed and list(result.table.index) == ["x_t", "a_prev", "Wax", "Waa", "ba"], result


def test_an_unwritten_skeleton_is_told_which_output_is_none(ip):
    from IPython.core.error import UsageError

    cs231n(ip)
    run(
        ip,
        "def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):\n    next_h, next_c, cache = None, None, None\n"
        "    return next_h, next_c, cache\n",
    )
    run(ip, LSTM_STEP_CELL.format(seed=0, n=2).split("next_h, next_c, cache =")[0])
    with pytest.raises(
        UsageError, match=r"lstm_step_forward returned NoneType as next_h.*is it written yet\?"
    ):
        check(ip, flags("lstm_step"))


# ---- the layers imported from the assignment's own package (``from cs231n.rnn_layers import *``) ---

#: cs231n's own order: the loss first, then the numerical gradient of a lambda around it.
SOFTMAX_TEST_CELL = """
np.random.seed({seed})
N, T, V = {n}, 8, 9
x = 0.01 * np.random.randn(N, T, V)
y = np.random.randint(V, size=(N, T))
mask = (np.random.rand(N, T) > 0.5)
loss, dx = temporal_softmax_loss(x, y, mask, verbose=False)
dx_num = eval_numerical_gradient(lambda x: temporal_softmax_loss(x, y, mask)[0], x, verbose=False)
print('dx error: ', rel_error(dx, dx_num))
"""


def imported(ip, package, replace=()):
    package(
        "cs231n",
        {
            "rnn_layers": source("cs231n_rnn", replace=replace),
            "gradient_check": source("cs231n_gradient_check"),
        },
    )
    history_cell(ip, "from cs231n.rnn_layers import *\nfrom cs231n.gradient_check import *")
    history_cell(
        ip, "x, h0, dout = np.ones((2, 3, 4)), np.ones((2, 5)), np.ones((2, 3, 5))  # an earlier cell's"
    )


@pytest.mark.parametrize("n", [3, 7])
@pytest.mark.parametrize("seed", SEEDS)
def test_bare_check_after_the_imported_temporal_softmax_loss_cell_checks_x_with_y_and_mask_as_data(
    ip, package, seed, n
):
    imported(ip, package)
    history_cell(ip, SOFTMAX_TEST_CELL.format(seed=seed, n=n))
    result = check(ip)
    assert result.passed and not result.warned, result
    assert list(result.table.index) == ["x"] and result.table.loc["x", "shape"] == (n, 8, 9)
    assert result.functions.startswith("temporal_softmax_loss(x, y, mask)"), result.functions
    assert result.plan.source.startswith("eval_numerical_gradient(lambda x: temporal_softmax_loss"), (
        result.plan
    )


def test_an_imported_temporal_softmax_loss_ignoring_the_mask_fails_x(ip, package):
    imported(ip, package, replace=[("    dx_flat *= flat_mask[:, None]\n", "")])
    history_cell(ip, SOFTMAX_TEST_CELL.format(seed=0, n=5))
    assert check(ip).failed == ["x"]


@pytest.mark.parametrize("pair", sorted(CS231N))
def test_bare_check_after_each_test_cell_with_the_rnn_layers_imported(ip, package, pair):
    cell, rows, call = CS231N[pair]
    imported(ip, package)
    history_cell(ip, cell.format(seed=1, n=3))
    result = check(ip)
    assert result.passed and not result.warned, result
    assert list(result.table.index) == rows and call in result.functions, result.functions


@pytest.mark.parametrize("case", sorted(CS231N_BUGS))
def test_a_planted_bug_in_the_imported_rnn_layers_fails_exactly_its_blocks(ip, package, case):
    pair, change, expected, _ = CS231N_BUGS[case]
    imported(ip, package, replace=[change])
    history_cell(ip, CS231N[pair][0].format(seed=0, n=4))
    assert sorted(check(ip).failed) == sorted(expected)


# ---- the upstream gradient without a call: the namespace's, or a seeded draw, and the caption says -

RNN_ARRAYS = """
np.random.seed({seed})
N, D, T, H = {n}, 3, 6, 5
x = np.random.randn(N, T, D)
h0 = np.random.randn(N, H)
Wx = np.random.randn(D, {gates} * H)
Wh = np.random.randn(H, {gates} * H)
b = np.random.randn({gates} * H)
"""


def rnn_arrays(ip, pair, upstream, seed=0, n=3):
    run(ip, RNN_ARRAYS.format(seed=seed, n=n, gates=4 if pair == "lstm" else 1) + upstream)


@pytest.mark.parametrize("pair", ["rnn", "lstm"])
@pytest.mark.parametrize("name", ["dout", "dh"])
def test_the_namespaces_upstream_gradient_of_the_outputs_shape_is_used_without_a_call(ip, pair, name):
    cs231n(ip)
    rnn_arrays(ip, pair, f"{name} = np.random.randn(N, T, H)")
    result = check(ip, flags(pair))
    assert result.passed and not result.warned, result
    label = "dh" if name == "dh" else "dh = dout"
    assert result.functions.endswith(f"{pair}_backward(dh, cache); {label} from the namespace"), (
        result.functions
    )


@pytest.mark.parametrize("pair", ["rnn", "lstm"])
def test_two_namespace_arrays_that_fit_with_other_values_the_caption_says_which_was_used(ip, pair):
    cs231n(ip)
    rnn_arrays(ip, pair, "dout = np.random.randn(N, T, H)\ndh = np.random.randn(N, T, H)")
    result = check(ip, flags(pair))
    assert result.passed, result
    assert result.functions.endswith(
        "dh from the namespace (dout also fits, with other values: pass it to the backward in a call of "
        "yours to use it)"
    ), result.functions


@pytest.mark.parametrize("pair", ["rnn", "lstm"])
def test_an_upstream_gradient_of_another_shape_is_not_used_and_the_draw_says_what_was_looked_for(ip, pair):
    cs231n(ip)
    rnn_arrays(ip, pair, "dout = np.random.randn(N, 2, H)")
    result = check(ip, flags(pair))
    assert result.passed, result
    assert "dh: seeded random (3, 6, 5) (no dh, dout of shape (3, 6, 5) in the namespace)" in result.functions
