# word2vec in the CS224n 2017 style: (predicted, target, outputVectors, dataset) ->
# (cost, gradPred, grad), the gradients of the float array arguments in order.
import random

import numpy as np


def softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmaxCostAndGradient(predicted, target, outputVectors, dataset):
    probs = softmax(outputVectors.dot(predicted))
    cost = -np.log(probs[target])
    probs[target] -= 1.0
    gradPred = outputVectors.T.dot(probs)
    grad = np.outer(probs, predicted)
    return cost, gradPred, grad


def negSamplingCostAndGradient(predicted, target, outputVectors, dataset, K=10):
    indices = [target]
    for _ in range(K):
        idx = dataset.sampleTokenIdx()
        while idx == target:
            idx = dataset.sampleTokenIdx()
        indices.append(idx)
    grad = np.zeros(outputVectors.shape)
    gradPred = np.zeros(predicted.shape)
    z = sigmoid(outputVectors[target].dot(predicted))
    cost = -np.log(z)
    grad[target] += predicted * (z - 1.0)
    gradPred += outputVectors[target] * (z - 1.0)
    for k in indices[1:]:
        z = sigmoid(-outputVectors[k].dot(predicted))
        cost -= np.log(z)
        grad[k] += -predicted * (z - 1.0)
        gradPred += -outputVectors[k] * (z - 1.0)
    return cost, gradPred, grad


class SmallDataset:
    def sampleTokenIdx(self):
        return random.randint(0, 4)
