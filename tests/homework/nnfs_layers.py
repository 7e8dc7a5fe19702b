# nnfs-style layer objects: forward stores .output, backward stores .dweights, .dbiases, .dinputs.
import numpy as np


class Layer_Dense:
    def __init__(self, n_inputs, n_neurons, seed=0):
        rng = np.random.default_rng(seed)
        self.weights = 0.5 * rng.standard_normal((n_inputs, n_neurons))
        self.biases = 0.1 * rng.standard_normal((1, n_neurons))

    def forward(self, inputs):
        self.inputs = inputs
        self.output = inputs @ self.weights + self.biases

    def backward(self, dvalues):
        self.dweights = self.inputs.T @ dvalues
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = dvalues @ self.weights.T


class Activation_Tanh:
    def forward(self, inputs):
        self.output = np.tanh(inputs)

    def backward(self, dvalues):
        self.dinputs = dvalues * (1 - self.output**2)


class Loss_MeanSquared:
    def forward(self, y_pred, y_true):
        self.y_pred, self.y_true = y_pred, y_true
        return np.mean(np.sum((y_pred - y_true) ** 2, axis=1))

    def backward(self):
        self.dinputs = 2 * (self.y_pred - self.y_true) / len(self.y_pred)
