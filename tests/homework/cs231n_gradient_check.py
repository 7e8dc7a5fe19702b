# The numerical-gradient helpers the cs231n notebooks call in their own test cells: central
# differences of a function of an array, either of a scalar (eval_numerical_gradient) or contracted
# with an upstream gradient (eval_numerical_gradient_array).
import numpy as np


def eval_numerical_gradient(f, x, verbose=True, h=0.00001):
    grad = np.zeros_like(x)
    for ix in np.ndindex(*x.shape):
        saved = x[ix]
        x[ix] = saved + h
        plus = f(x)
        x[ix] = saved - h
        minus = f(x)
        x[ix] = saved
        grad[ix] = (plus - minus) / (2 * h)
        if verbose:
            print(ix, grad[ix])
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    grad = np.zeros_like(x)
    for ix in np.ndindex(*x.shape):
        saved = x[ix]
        x[ix] = saved + h
        plus = f(x).copy()
        x[ix] = saved - h
        minus = f(x).copy()
        x[ix] = saved
        grad[ix] = np.sum((plus - minus) * df) / (2 * h)
    return grad


def rel_error(x, y):
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))
