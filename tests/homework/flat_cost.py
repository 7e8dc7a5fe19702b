# Cost and gradient on one flat vector: the Coursera ML nnCostFunction style, scipy's
# fun(x) -> (f, g) with jac=True, and a separate (f, fprime) pair as check_grad takes.
import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def nnCostFunction(nn_params, input_layer_size, hidden_layer_size, num_labels, X, y, lambda_):
    split = hidden_layer_size * (input_layer_size + 1)
    Theta1 = nn_params[:split].reshape(hidden_layer_size, input_layer_size + 1)
    Theta2 = nn_params[split:].reshape(num_labels, hidden_layer_size + 1)
    m = X.shape[0]
    a1 = np.hstack([np.ones((m, 1)), X])
    a2 = np.hstack([np.ones((m, 1)), sigmoid(a1 @ Theta1.T)])
    h = sigmoid(a2 @ Theta2.T)
    Y = np.eye(num_labels)[y]
    J = -np.sum(Y * np.log(h) + (1 - Y) * np.log(1 - h)) / m
    J += lambda_ / (2 * m) * (np.sum(Theta1[:, 1:] ** 2) + np.sum(Theta2[:, 1:] ** 2))
    d3 = h - Y
    d2 = (d3 @ Theta2)[:, 1:] * a2[:, 1:] * (1 - a2[:, 1:])
    Theta1_grad = d2.T @ a1 / m
    Theta2_grad = d3.T @ a2 / m
    Theta1_grad[:, 1:] += lambda_ / m * Theta1[:, 1:]
    Theta2_grad[:, 1:] += lambda_ / m * Theta2[:, 1:]
    return J, np.concatenate([Theta1_grad.ravel(), Theta2_grad.ravel()])


def rosen_with_grad(x):
    f = np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return f, g


def quartic(x):
    return np.sum(x**4) + x[0] * x[-1]


def quartic_prime(x):
    g = 4 * x**3
    g[0] += x[-1]
    g[-1] += x[0]
    return g
