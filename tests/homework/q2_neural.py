# CS224n 2017 assignment 1, q2_neural: a two-layer sigmoid network whose parameters are one flat
# vector, the third argument: cost, grad = forward_backward_prop(data, labels, params, dimensions).
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward_backward_prop(data, labels, params, dimensions):
    ofs = 0
    Dx, H, Dy = dimensions
    W1 = np.reshape(params[ofs : ofs + Dx * H], (Dx, H))
    ofs += Dx * H
    b1 = np.reshape(params[ofs : ofs + H], (1, H))
    ofs += H
    W2 = np.reshape(params[ofs : ofs + H * Dy], (H, Dy))
    ofs += H * Dy
    b2 = np.reshape(params[ofs : ofs + Dy], (1, Dy))

    h = sigmoid(data.dot(W1) + b1)
    yhat = softmax(h.dot(W2) + b2)
    cost = -np.sum(labels * np.log(yhat))

    d2 = yhat - labels
    gradW2 = h.T.dot(d2)
    gradb2 = d2.sum(axis=0, keepdims=True)
    d1 = d2.dot(W2.T) * h * (1 - h)
    gradW1 = data.T.dot(d1)
    gradb1 = d1.sum(axis=0, keepdims=True)

    grad = np.concatenate((gradW1.flatten(), gradb1.flatten(), gradW2.flatten(), gradb2.flatten()))
    return cost, grad
