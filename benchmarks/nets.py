"""Hand-written numpy nets for the benchmark: the seed homework's 3-layer
LINEAR->RELU->LINEAR->RELU->LINEAR->SIGMOID at growing sizes, plus the homework's own
gradient_check_n loop (copy the vector, rebuild the dict, per entry)."""

import numpy as np

SIZES = {  # layer sizes (n_x, n_1, n_2, 1) for about 50, 5k, 50k and 500k parameters
    "50": (4, 5, 3),
    "5k": (50, 64, 24),
    "50k": (200, 200, 48),
    "500k": (700, 600, 128),
}
M = 32


def make_net(name, m=M, seed=0):
    n_x, n1, n2 = SIZES[name]
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_x, m))
    Y = (rng.random((1, m)) > 0.5).astype(float)
    dims = [n_x, n1, n2, 1]
    parameters = {}
    for layer in range(1, 4):
        fan_in = dims[layer - 1]
        parameters[f"W{layer}"] = rng.normal(size=(dims[layer], fan_in)) * np.sqrt(2.0 / fan_in)
        parameters[f"b{layer}"] = rng.normal(size=(dims[layer], 1)) * 0.1
    return X, Y, parameters


def n_params(parameters):
    return sum(v.size for v in parameters.values())


def relu(x):
    return np.maximum(0, x)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def forward_propagation_n(X, Y, parameters):
    m = X.shape[1]
    Z1 = np.dot(parameters["W1"], X) + parameters["b1"]
    A1 = relu(Z1)
    Z2 = np.dot(parameters["W2"], A1) + parameters["b2"]
    A2 = relu(Z2)
    Z3 = np.dot(parameters["W3"], A2) + parameters["b3"]
    A3 = sigmoid(Z3)
    cost = 1.0 / m * np.sum(-np.log(A3) * Y - np.log(1 - A3) * (1 - Y))
    return cost, (Z1, A1, Z2, A2, Z3, A3, parameters["W2"], parameters["W3"])


def backward_propagation_n(X, Y, cache):
    m = X.shape[1]
    Z1, A1, Z2, A2, Z3, A3, W2, W3 = cache
    dZ3 = A3 - Y
    dZ2 = np.dot(W3.T, dZ3) * (A2 > 0)
    dZ1 = np.dot(W2.T, dZ2) * (A1 > 0)
    return {
        "dW3": dZ3 @ A2.T / m,
        "db3": dZ3.sum(axis=1, keepdims=True) / m,
        "dW2": dZ2 @ A1.T / m,
        "db2": dZ2.sum(axis=1, keepdims=True) / m,
        "dW1": dZ1 @ X.T / m,
        "db1": dZ1.sum(axis=1, keepdims=True) / m,
    }


# ---- the homework's own loop --------------------------------------------------------------
KEYS = ["W1", "b1", "W2", "b2", "W3", "b3"]


def dictionary_to_vector(parameters):
    return np.concatenate([parameters[k].reshape(-1, 1) for k in KEYS])


def vector_to_dictionary(theta, shapes):
    out, start = {}, 0
    for k in KEYS:
        size = int(np.prod(shapes[k]))
        out[k] = theta[start : start + size].reshape(shapes[k])
        start += size
    return out


def gradients_to_vector(gradients):
    return np.concatenate([gradients["d" + k].reshape(-1, 1) for k in KEYS])


def gradient_check_n(parameters, gradients, X, Y, epsilon=1e-7, limit=None):
    """The homework's loop; ``limit`` stops after that many entries (for timing a prefix)."""
    shapes = {k: v.shape for k, v in parameters.items()}
    parameters_values = dictionary_to_vector(parameters)
    grad = gradients_to_vector(gradients)
    num_parameters = parameters_values.shape[0] if limit is None else limit
    gradapprox = np.zeros((num_parameters, 1))
    for i in range(num_parameters):
        theta_plus = np.copy(parameters_values)
        theta_plus[i] = theta_plus[i] + epsilon
        J_plus, _ = forward_propagation_n(X, Y, vector_to_dictionary(theta_plus, shapes))
        theta_minus = np.copy(parameters_values)
        theta_minus[i] = theta_minus[i] - epsilon
        J_minus, _ = forward_propagation_n(X, Y, vector_to_dictionary(theta_minus, shapes))
        gradapprox[i] = (J_plus - J_minus) / (2 * epsilon)
    grad = grad[:num_parameters]
    return np.linalg.norm(grad - gradapprox) / (np.linalg.norm(grad) + np.linalg.norm(gradapprox))


def bare_loop(parameters, X, Y, epsilon=1e-7, limit=None):
    """The floor for full mode: in-place central differences, nothing else."""
    approx = {}
    count = 0
    for k, w in parameters.items():
        flat = w.reshape(-1)
        a = np.zeros(flat.size)
        for i in range(flat.size):
            if limit is not None and count >= limit:
                break
            x = flat[i]
            flat[i] = x + epsilon
            jp, _ = forward_propagation_n(X, Y, parameters)
            flat[i] = x - epsilon
            jm, _ = forward_propagation_n(X, Y, parameters)
            flat[i] = x
            a[i] = (jp - jm) / (2 * epsilon)
            count += 1
        approx[k] = a.reshape(w.shape)
    return approx
