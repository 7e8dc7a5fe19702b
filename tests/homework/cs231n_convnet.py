# A three-layer convolutional net in the cs231n style (conv - relu - 2x2 max pool - affine - relu -
# affine - softmax), checked as its assignment checks it: tiny weights (weight_scale 1e-3), two
# 3x16x16 inputs, no regularization.  Run after cs231n_layers.py.


class ThreeLayerConvNet:
    def __init__(self, input_dim=(3, 16, 16), num_filters=3, filter_size=3, hidden_dim=7, num_classes=10,
                 weight_scale=1e-3, reg=0.0, seed=0):
        rng = np.random.default_rng(seed)
        channels, height, width = input_dim
        self.reg = reg
        self.params = {
            "W1": weight_scale * rng.standard_normal((num_filters, channels, filter_size, filter_size)),
            "b1": np.zeros(num_filters),
            "W2": weight_scale * rng.standard_normal((num_filters * (height // 2) * (width // 2), hidden_dim)),
            "b2": np.zeros(hidden_dim),
            "W3": weight_scale * rng.standard_normal((hidden_dim, num_classes)),
            "b3": np.zeros(num_classes),
        }

    def loss(self, X, y=None):
        W1, W2, W3 = self.params["W1"], self.params["W2"], self.params["W3"]
        conv, conv_cache = conv_forward_naive(X, W1, self.params["b1"], {"stride": 1, "pad": (W1.shape[2] - 1) // 2})
        relu1, relu1_cache = relu_forward(conv)
        pooled, pool_cache = max_pool_forward_naive(relu1, {"pool_height": 2, "pool_width": 2, "stride": 2})
        hidden, hidden_cache = affine_relu_forward(pooled, W2, self.params["b2"])
        scores, scores_cache = affine_forward(hidden, W3, self.params["b3"])
        if y is None:
            return scores
        loss, dscores = softmax_loss(scores, y)
        loss += 0.5 * self.reg * sum(np.sum(W * W) for W in (W1, W2, W3))
        grads = {}
        dhidden, grads["W3"], grads["b3"] = affine_backward(dscores, scores_cache)
        dpooled, grads["W2"], grads["b2"] = affine_relu_backward(dhidden, hidden_cache)
        drelu1 = max_pool_backward_naive(dpooled, pool_cache)
        _, grads["W1"], grads["b1"] = conv_backward_naive(relu_backward(drelu1, relu1_cache), conv_cache)
        for key in ("W1", "W2", "W3"):
            grads[key] += self.reg * self.params[key]
        return loss, grads


def convnet_test_case(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, 3, 16, 16)), rng.integers(10, size=2)
