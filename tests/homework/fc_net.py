# cs231n assignment 2's FullyConnectedNet with batch normalization (load after cs231n_layers):
# {affine - batchnorm - relu} x (L - 1) - affine - softmax.  A bias feeding a batchnorm has a true
# gradient of zero: the mean subtraction cancels any shift of it.
import numpy as np


class FullyConnectedNet:
    def __init__(
        self,
        hidden_dims,
        input_dim=15,
        num_classes=10,
        normalization=None,
        reg=0.0,
        weight_scale=5e-2,
        dtype=np.float64,
        seed=0,
    ):
        rng = np.random.default_rng(seed)
        self.normalization = normalization
        self.reg = reg
        self.num_layers = 1 + len(hidden_dims)
        self.params = {}
        dims = [input_dim, *hidden_dims, num_classes]
        for i in range(self.num_layers):
            self.params[f"W{i + 1}"] = (weight_scale * rng.standard_normal((dims[i], dims[i + 1]))).astype(
                dtype
            )
            self.params[f"b{i + 1}"] = (0.1 * rng.standard_normal(dims[i + 1])).astype(dtype)
            if normalization == "batchnorm" and i < self.num_layers - 1:
                self.params[f"gamma{i + 1}"] = (1.0 + 0.1 * rng.standard_normal(dims[i + 1])).astype(dtype)
                self.params[f"beta{i + 1}"] = (0.1 * rng.standard_normal(dims[i + 1])).astype(dtype)
        self.bn_params = [{"mode": "train"} for _ in range(self.num_layers - 1)]

    def loss(self, X, y=None):
        caches = []
        out = X
        for i in range(1, self.num_layers):
            out, fc = affine_forward(out, self.params[f"W{i}"], self.params[f"b{i}"])
            bn = None
            if self.normalization == "batchnorm":
                out, bn = batchnorm_forward(
                    out, self.params[f"gamma{i}"], self.params[f"beta{i}"], self.bn_params[i - 1]
                )
            out, relu = relu_forward(out)
            caches.append((fc, bn, relu))
        L = self.num_layers
        scores, last = affine_forward(out, self.params[f"W{L}"], self.params[f"b{L}"])
        if y is None:
            return scores
        loss, dscores = softmax_loss(scores, y)
        grads = {}
        dout, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, last)
        for i in range(L - 1, 0, -1):
            fc, bn, relu = caches[i - 1]
            dout = relu_backward(dout, relu)
            before_bn = dout
            if bn is not None:
                dout, grads[f"gamma{i}"], grads[f"beta{i}"] = batchnorm_backward(dout, bn)
            dout, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(dout, fc)
        for i in range(1, L + 1):
            W = self.params[f"W{i}"]
            loss += 0.5 * self.reg * np.sum(W * W)
            grads[f"W{i}"] += self.reg * W
        return loss, grads
