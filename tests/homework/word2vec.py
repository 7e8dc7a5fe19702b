# word2vec in the CS224n assignment 2 style (2019+): each loss returns the loss and one gradient per
# float array argument, (loss, gradient wrt the center vector, gradient wrt the outside vectors);
# negative sampling draws its words from Python's `random` through dataset.sampleTokenIdx.
import random

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def normalizeRows(x):
    return x / np.sqrt((x**2).sum(axis=1, keepdims=True))


def naiveSoftmaxLossAndGradient(centerWordVec, outsideWordIdx, outsideVectors, dataset):
    probs = softmax(outsideVectors @ centerWordVec)
    loss = -np.log(probs[outsideWordIdx])
    delta = probs.copy()
    delta[outsideWordIdx] -= 1.0
    gradCenterVec = outsideVectors.T @ delta
    gradOutsideVecs = np.outer(delta, centerWordVec)
    return loss, gradCenterVec, gradOutsideVecs


def getNegativeSamples(outsideWordIdx, dataset, K):
    samples = []
    while len(samples) < K:
        idx = dataset.sampleTokenIdx()
        if idx != outsideWordIdx:
            samples.append(idx)
    return samples


def negSamplingLossAndGradient(centerWordVec, outsideWordIdx, outsideVectors, dataset, K=10):
    negatives = getNegativeSamples(outsideWordIdx, dataset, K)
    u_o = outsideVectors[outsideWordIdx]
    s_o = sigmoid(u_o @ centerWordVec)
    s_k = sigmoid(-outsideVectors[negatives] @ centerWordVec)
    loss = -np.log(s_o) - np.sum(np.log(s_k))
    gradCenterVec = (s_o - 1.0) * u_o + (1.0 - s_k) @ outsideVectors[negatives]
    gradOutsideVecs = np.zeros_like(outsideVectors)
    gradOutsideVecs[outsideWordIdx] += (s_o - 1.0) * centerWordVec
    np.add.at(gradOutsideVecs, negatives, np.outer(1.0 - s_k, centerWordVec))
    return loss, gradCenterVec, gradOutsideVecs


def skipgram(
    currentCenterWord,
    windowSize,
    outsideWords,
    word2Ind,
    centerWordVectors,
    outsideVectors,
    dataset,
    word2vecLossAndGradient=naiveSoftmaxLossAndGradient,
):
    loss = 0.0
    gradCenterVecs = np.zeros(centerWordVectors.shape)
    gradOutsideVectors = np.zeros(outsideVectors.shape)
    center = word2Ind[currentCenterWord]
    for word in outsideWords:
        step, g_center, g_outside = word2vecLossAndGradient(
            centerWordVectors[center], word2Ind[word], outsideVectors, dataset
        )
        loss += step
        gradCenterVecs[center] += g_center
        gradOutsideVectors += g_outside
    return loss, gradCenterVecs, gradOutsideVectors


def word2vec_sgd_wrapper(
    word2vecModel,
    word2Ind,
    wordVectors,
    dataset,
    windowSize,
    word2vecLossAndGradient=naiveSoftmaxLossAndGradient,
):
    batchsize = 10
    loss = 0.0
    grad = np.zeros(wordVectors.shape)
    half = wordVectors.shape[0] // 2
    for _ in range(batchsize):
        size = random.randint(1, windowSize)
        center, context = dataset.getRandomContext(size)
        c, g_in, g_out = word2vecModel(
            center,
            size,
            context,
            word2Ind,
            wordVectors[:half],
            wordVectors[half:],
            dataset,
            word2vecLossAndGradient,
        )
        loss += c / batchsize
        grad[:half] += g_in / batchsize
        grad[half:] += g_out / batchsize
    return loss, grad


class DummyDataset:
    """Five tokens; every draw comes from Python's random module, as the course's dummy dataset."""

    tokens = ["a", "b", "c", "d", "e"]

    def sampleTokenIdx(self):
        return random.randint(0, 4)

    def getRandomContext(self, C):
        return self.tokens[random.randint(0, 4)], [self.tokens[random.randint(0, 4)] for _ in range(2 * C)]


def getDummyObjects(dim=3, seed=9265):
    random.seed(31415)
    np.random.seed(seed)
    vectors = normalizeRows(np.random.randn(10, dim))
    return DummyDataset(), vectors, {t: i for i, t in enumerate(DummyDataset.tokens)}


def gradcheck_naive(f, x, gradientText):
    """The course's checker, in short: central differences of f(x) -> (loss, grad), Python's random
    state saved and set again before every evaluation."""
    state = random.getstate()
    fx, grad = f(x)
    h = 1e-4
    worst = 0.0
    for ix in np.ndindex(x.shape):
        old = x[ix]
        x[ix] = old + h
        random.setstate(state)
        plus = f(x)[0]
        x[ix] = old - h
        random.setstate(state)
        minus = f(x)[0]
        x[ix] = old
        numeric = (plus - minus) / (2 * h)
        worst = max(worst, abs(numeric - grad[ix]) / max(1.0, abs(numeric), abs(grad[ix])))
    print(gradientText, "passed" if worst < 1e-5 else "FAILED")
