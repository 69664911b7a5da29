"""The multiplicative and hybrid rules of docs/math.md in plain torch ops, one
line per formula: what the tests compare multopt.torch with (the additive rule is compared with
torch.optim itself)."""

import torch


class Reference:
    """One optimizer over a list of tensors: base in sgd, adam, adagrad, rmsprop; rule in
    multiplicative, hybrid; settings by the names of the paper's package."""

    def __init__(self, params, base, rule, lr_in=1.0, lr_out=1e-3, lr=1e-3, g=1.0, weight_decay=0.0,
                 momentum=0.0, dampening=0.0, nesterov=False, betas=(0.9, 0.999), eps=None, amsgrad=False,
                 lr_decay=0.0, initial_accumulator_value=0.0, alpha=0.99, centered=False):
        self.params, self.base, self.rule = list(params), base, rule
        self.lr_in, self.lr_out, self.lr, self.g = lr_in, lr_out, lr, g
        self.weight_decay, self.momentum, self.dampening, self.nesterov = weight_decay, momentum, dampening, nesterov
        self.beta1, self.beta2, self.amsgrad = betas[0], betas[1], amsgrad
        self.eps = eps if eps is not None else {"adagrad": 1e-10}.get(base, 1e-8)
        self.lr_decay, self.initial_accumulator_value = lr_decay, initial_accumulator_value
        self.alpha, self.centered = alpha, centered
        self.state = [{} for _ in self.params]

    def direction(self, g, st):
        """The base's direction d and scale s."""
        t = st["t"]
        if self.base == "sgd":
            if self.momentum == 0:
                return g, 1.0
            st["b"] = g.clone() if t == 1 else self.momentum * st["b"] + (1 - self.dampening) * g
            return (g + self.momentum * st["b"] if self.nesterov else st["b"]), 1.0
        if self.base == "adam":
            st["m"] = self.beta1 * st.get("m", torch.zeros_like(g)) + (1 - self.beta1) * g
            st["v"] = self.beta2 * st.get("v", torch.zeros_like(g)) + (1 - self.beta2) * g * g
            v = st["v"]
            if self.amsgrad:
                st["vmax"] = torch.maximum(st.get("vmax", torch.zeros_like(g)), v)
                v = st["vmax"]
            denom = v.sqrt() / (1 - self.beta2 ** t) ** 0.5 + self.eps
            return st["m"] / denom, 1 / (1 - self.beta1 ** t)
        if self.base == "adagrad":
            st["S"] = st.get("S", torch.full_like(g, self.initial_accumulator_value)) + g * g
            return g / (st["S"].sqrt() + self.eps), 1 / (1 + (t - 1) * self.lr_decay)
        if self.base == "rmsprop":
            st["q"] = self.alpha * st.get("q", torch.zeros_like(g)) + (1 - self.alpha) * g * g
            if self.centered:
                st["a"] = self.alpha * st.get("a", torch.zeros_like(g)) + (1 - self.alpha) * g
                avg = (st["q"] - st["a"] * st["a"]).sqrt() + self.eps
            else:
                avg = st["q"].sqrt() + self.eps
            if self.momentum > 0:
                st["b"] = self.momentum * st.get("b", torch.zeros_like(g)) + g / avg
                return st["b"], 1.0
            return g / avg, 1.0
        raise ValueError(self.base)

    def zero_grad(self):
        for theta in self.params:
            theta.grad = None

    @torch.no_grad()
    def step(self):
        for theta, st in zip(self.params, self.state):
            if theta.grad is None:
                continue
            st["t"] = st.get("t", 0) + 1
            g = theta.grad + self.weight_decay * theta
            d, s = self.direction(g, st)
            multiplicative = s * self.lr_out * theta.abs() * torch.tanh(self.lr_in * d)
            if self.rule == "multiplicative":
                theta -= multiplicative
            else:
                theta -= self.g * multiplicative + (1 - self.g) * s * self.lr * d
