"""Variants of the benchmark net for the reliability table: the same 3-layer net with a chosen
hidden activation and optional inverted dropout; the backward can carry one of the planted bugs
below.  Extra arguments (act, keep_prob, bug) are bound by name from the namespace."""

import numpy as np

BUGS = {  # name -> blocks that must fail
    "two_block": {"W2", "b1"},  # the homework's own pair: dW2 * 2, db1 * 4
    "one_entry": {"W1"},  # dW1[3, 7] += 1e-3 * max|dW1|
    "one_unit_mask": {"W1", "b1"},  # the ReLU mask forgotten on the most often inactive unit
}


def hidden(z, act):
    return np.tanh(z) if act == "tanh" else np.maximum(0, z)


def hidden_slope(z, a, act):
    return 1 - a**2 if act == "tanh" else (z > 0).astype(float)


def forward_net(X, Y, parameters, act="relu", keep_prob=1.0):
    m = X.shape[1]
    Z1 = parameters["W1"] @ X + parameters["b1"]
    A1 = hidden(Z1, act)
    D1 = (np.random.rand(*A1.shape) < keep_prob) / keep_prob if keep_prob < 1 else np.ones(A1.shape)
    A1d = A1 * D1
    Z2 = parameters["W2"] @ A1d + parameters["b2"]
    A2 = hidden(Z2, act)
    D2 = (np.random.rand(*A2.shape) < keep_prob) / keep_prob if keep_prob < 1 else np.ones(A2.shape)
    A2d = A2 * D2
    Z3 = parameters["W3"] @ A2d + parameters["b3"]
    A3 = 1 / (1 + np.exp(-Z3))
    cost = 1.0 / m * np.sum(-np.log(A3) * Y - np.log(1 - A3) * (1 - Y))
    return cost, (Z1, A1, D1, A1d, Z2, A2, D2, A2d, A3, parameters["W2"], parameters["W3"])


def backward_net(X, Y, cache, act="relu", bug=None):
    m = X.shape[1]
    Z1, A1, D1, A1d, Z2, A2, D2, A2d, A3, W2, W3 = cache
    dZ3 = A3 - Y
    dZ2 = (W3.T @ dZ3) * D2 * hidden_slope(Z2, A2, act)
    dA1 = (W2.T @ dZ2) * D1
    dZ1 = dA1 * hidden_slope(Z1, A1, act)
    if bug == "one_unit_mask":
        unit = int(np.argmin((Z1 > 0).sum(axis=1)))
        dZ1[unit] = dA1[unit]
    grads = {
        "dW3": dZ3 @ A2d.T / m,
        "db3": dZ3.sum(axis=1, keepdims=True) / m,
        "dW2": dZ2 @ A1d.T / m,
        "db2": dZ2.sum(axis=1, keepdims=True) / m,
        "dW1": dZ1 @ X.T / m,
        "db1": dZ1.sum(axis=1, keepdims=True) / m,
    }
    if bug == "two_block":
        grads["dW2"] = grads["dW2"] * 2
        grads["db1"] = grads["db1"] * 4
    if bug == "one_entry":
        dW1 = grads["dW1"]
        dW1[3 % dW1.shape[0], 7 % dW1.shape[1]] += 1e-3 * np.abs(dW1).max()
    return grads
