"""multopt's step in torch's multi-tensor ops (torch._foreach_*), for parameters on any device:
the formulas of docs/math.md, one function per base and one per rule, composed as the C++ step
composes them (step.hpp: prestep, base direction, rule), over lists of tensors of one device and
dtype. The order of each formula's operations is the fused loop's, and each step's coefficients
are computed in double as the fused loop computes them (bases/*.hpp, rules/*.hpp), so that the
two agree to the last bits the arithmetic allows (docs/pytorch.md).

multopt.torch steps with it the parameters that the fused CPU loop does not (backend="foreach",
or backend="auto" and a parameter off the CPU). The state is the fused loop's, by the same names
and dtypes: arrays on the parameter's device, "step" (0-dim float32) and NAdam's "mu_product"
(0-dim float64) on the CPU, where torch.optim keeps its step counts, so that reading them does
not wait for the device. With state_dtype (bfloat16 or float16), a base's arrays are stored in
it and stepped as float32 copies, stored back rounded to nearest even, as the fused loop does
(storage.hpp). With ema_decay, the moving average of the weights ("ema") and a loss
scaler's grad_scale are the fused loop's too (weight_average.hpp, prestep.hpp).
"""

import math

import torch

from . import _multopt

# 16-bit parameters are computed in float32, with float32 state (storage.hpp).
NARROW = (torch.bfloat16, torch.float16)
_STEPPED = (torch.float32, torch.float64, torch.complex64, torch.complex128) + NARROW
MASTER = "master_weights"


# --- Bases: each one's direction d with its scale s (the arrays each needs, by name, and their
# initial values are the fused step's: _multopt.state_of).
# direction(g, arrays, s, count): g the gradients after the prestep, arrays by name, s the
# group's settings, count the tensors' step (count.t, this step's number; count.made, the arrays
# made for it; count.mu_product, NAdam's product, which it advances, None for the others).

def _moments(g, arrays, s):
    """Adam's two moments after g (moment_params.hpp's update_moments)."""
    m, v = arrays["exp_avg"], arrays["exp_avg_sq"]
    torch._foreach_mul_(m, s["beta1"])
    torch._foreach_add_(m, g, alpha=1.0 - s["beta1"])
    torch._foreach_mul_(v, s["beta2"])
    torch._foreach_addcmul_(v, g, g, value=1.0 - s["beta2"])
    return m, v


def _sgd(g, arrays, s, count):
    if not s["momentum"] > 0:
        return g, 1.0
    b = arrays["momentum_buffer"]
    if "momentum_buffer" in count.made:  # a new buffer starts as the gradient, undamped
        for buffer, gradient in zip(b, g):
            buffer.copy_(gradient)
    else:
        torch._foreach_mul_(b, s["momentum"])
        torch._foreach_add_(b, g, alpha=1.0 - s["dampening"])
    return (torch._foreach_add(g, b, alpha=s["momentum"]) if s["nesterov"] else b), 1.0


def _adam(g, arrays, s, count):
    m, v = _moments(g, arrays, s)
    if s["amsgrad"]:
        torch._foreach_maximum_(arrays["max_exp_avg_sq"], v)
        v = arrays["max_exp_avg_sq"]
    denominator = torch._foreach_sqrt(v)
    torch._foreach_mul_(denominator, 1.0 / math.sqrt(1.0 - s["beta2"] ** count.t))
    torch._foreach_add_(denominator, s["eps"])
    return torch._foreach_div(m, denominator), 1.0 / (1.0 - s["beta1"] ** count.t)


def _adagrad(g, arrays, s, count):
    total = arrays["sum"]
    torch._foreach_addcmul_(total, g, g)
    denominator = torch._foreach_sqrt(total)
    torch._foreach_add_(denominator, s["eps"])
    return torch._foreach_div(g, denominator), 1.0 / (1.0 + (count.t - 1) * s["lr_decay"])


def _rmsprop(g, arrays, s, count):
    q = arrays["square_avg"]
    torch._foreach_mul_(q, s["alpha"])
    torch._foreach_addcmul_(q, g, g, value=1.0 - s["alpha"])
    average = q
    if s["centered"]:
        a = arrays["grad_avg"]
        torch._foreach_mul_(a, s["alpha"])
        torch._foreach_add_(a, g, alpha=1.0 - s["alpha"])
        average = torch._foreach_addcmul(q, a, a, value=-1.0)
    denominator = torch._foreach_sqrt(average)
    torch._foreach_add_(denominator, s["eps"])
    d = torch._foreach_div(g, denominator)
    if not s["momentum"] > 0:
        return d, 1.0
    b = arrays["momentum_buffer"]
    torch._foreach_mul_(b, s["momentum"])
    torch._foreach_add_(b, d)
    return b, 1.0


def _adamax(g, arrays, s, count):
    m, u = arrays["exp_avg"], arrays["exp_inf"]
    torch._foreach_mul_(m, s["beta1"])
    torch._foreach_add_(m, g, alpha=1.0 - s["beta1"])
    size = torch._foreach_abs(g)
    torch._foreach_add_(size, s["eps"])
    torch._foreach_mul_(u, s["beta2"])
    torch._foreach_maximum_(u, size)
    return torch._foreach_div(m, u), 1.0 / (1.0 - s["beta1"] ** count.t)


def _nadam(g, arrays, s, count):
    t, beta1, decay = count.t, s["beta1"], s["momentum_decay"]
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1.0) * decay))
    count.mu_product *= mu
    product = count.mu_product
    m, v = _moments(g, arrays, s)
    denominator = torch._foreach_mul(v, 1.0 / (1.0 - s["beta2"] ** t))
    torch._foreach_sqrt_(denominator)
    torch._foreach_add_(denominator, s["eps"])
    numerator = torch._foreach_mul(g, (1.0 - mu) / (1.0 - product))
    torch._foreach_add_(numerator, m, alpha=mu_next / (1.0 - product * mu_next))
    return torch._foreach_div(numerator, denominator), 1.0


def _radam(g, arrays, s, count):
    t, beta2 = count.t, s["beta2"]
    beta2_t = beta2 ** t
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho_t = rho_inf - 2.0 * t * beta2_t / (1.0 - beta2_t)
    m, v = _moments(g, arrays, s)
    scale = 1.0 / (1.0 - s["beta1"] ** t)
    if not rho_t > 5.0:  # the variance is not yet tractable: plain momentum
        return m, scale
    r = math.sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
    denominator = torch._foreach_sqrt(v)
    torch._foreach_add_(denominator, s["eps"])
    d = torch._foreach_mul(m, r * math.sqrt(1.0 - beta2_t))
    torch._foreach_div_(d, denominator)
    return d, scale


def _adadelta(g, arrays, s, count):
    a, b = arrays["square_avg"], arrays["acc_delta"]
    torch._foreach_mul_(a, s["rho"])
    torch._foreach_addcmul_(a, g, g, value=1.0 - s["rho"])
    d = torch._foreach_add(b, s["eps"])
    torch._foreach_sqrt_(d)
    denominator = torch._foreach_add(a, s["eps"])
    torch._foreach_sqrt_(denominator)
    torch._foreach_div_(d, denominator)
    torch._foreach_mul_(d, g)
    torch._foreach_mul_(b, s["rho"])
    torch._foreach_addcmul_(b, d, d, value=1.0 - s["rho"])
    return d, 1.0


def _lion(g, arrays, s, count):
    m = arrays["exp_avg"]
    d = torch._foreach_mul(m, s["beta1"])
    torch._foreach_add_(d, g, alpha=1.0 - s["beta1"])
    for interpolation in d:  # torch has no _foreach_sign (1.13)
        interpolation.sign_()
    torch._foreach_mul_(m, s["beta2"])
    torch._foreach_add_(m, g, alpha=1.0 - s["beta2"])
    return d, 1.0


BASES = {
    "sgd": _sgd,
    "adam": _adam,
    "adagrad": _adagrad,
    "rmsprop": _rmsprop,
    "adamax": _adamax,
    "nadam": _nadam,
    "radam": _radam,
    "adadelta": _adadelta,
    "lion": _lion,
}


# --- Rules: the decay rate the decoupled decay scales by, and the update of theta (in place) from the
# direction d and scale s (rules/*.hpp).

def _multiplicative_step(theta, d, step, lr_in):
    """theta <- theta - step·|theta|·tanh(lr_in·d)."""
    bounded = torch._foreach_mul(d, lr_in)
    torch._foreach_tanh_(bounded)
    change = torch._foreach_abs(theta)
    torch._foreach_mul_(change, step)
    torch._foreach_mul_(change, bounded)
    torch._foreach_sub_(theta, change)


def _additive(theta, d, scale, s):
    torch._foreach_add_(theta, d, alpha=-(scale * s["lr"]))


def _multiplicative(theta, d, scale, s):
    _multiplicative_step(theta, d, scale * s["lr_out"], s["lr_in"])


def _hybrid(theta, d, scale, s):
    _multiplicative_step(theta, d, s["g"] * scale * s["lr_out"], s["lr_in"])
    torch._foreach_add_(theta, d, alpha=-((1.0 - s["g"]) * scale * s["lr"]))


RULES = {
    "additive": (lambda s: s["lr"], _additive),
    "multiplicative": (lambda s: s["lr_out"], _multiplicative),
    "hybrid": (lambda s: s["g"] * s["lr_out"] + (1.0 - s["g"]) * s["lr"], _hybrid),
}

EMA = "ema"


def _average(ema, theta, decay, new):
    """The moving average of the weights, after the rule (weight_average.hpp): ema <- theta where
    it is new, else ema <- decay*ema + (1 - decay)*theta."""
    if new:
        for average, values in zip(ema, theta):
            average.copy_(values)
        return
    now = torch._foreach_mul(theta, 1.0 - decay)
    torch._foreach_mul_(ema, decay)
    torch._foreach_add_(ema, now)


def settings_of(rule, values):
    """A group's settings by multopt's names (torch.py's _group) as the fused step uses them
    (torch_types.hpp's torch_settings: lr_out scaled by lr / initial_lr for the M and H rules)."""
    return dict(_multopt.torch_settings(rule, values))


class _Count:
    """What the tensors of a bucket share besides their group: their step and scalar state."""

    def __init__(self, t, made, mu_product):
        self.t, self.made, self.mu_product = t, made, mu_product


class _Bucket:
    """Tensors of one group, device and dtype at the same step: stepped by the same ops with
    the same coefficients."""

    def __init__(self, settings, count):
        self.settings, self.count = settings, count
        self.theta, self.grads, self.steps = [], [], []
        self.narrow_state = []  # (a 16-bit state array, its float32 copy that the step steps)
        self.arrays = {}
        self.narrow = []  # (parameter, its float32 values) to store rounded after the step


def _refuse(group, index, what):
    raise ValueError("multopt: parameter {} of group {} {}; nothing was stepped".format(index, group, what))


def _real(tensor):
    """A complex tensor as its real and imaginary parts, as the fused loop steps it."""
    return torch.view_as_real(tensor.resolve_conj()) if tensor.is_complex() else tensor


def _number(group, index, state, name):
    """The value of a number in the state, which must be finite."""
    value = state[name]
    if torch.is_tensor(value):
        if value.numel() != 1 or value.is_complex():
            _refuse(group, index, "has a state '{}' of {} elements, not one real number".format(name, value.numel()))
        value = value.item()
    elif not isinstance(value, (int, float)) or isinstance(value, bool):
        _refuse(group, index, "has {} = {!r} in its state, which is neither a tensor nor a number".format(name, value))
    if not math.isfinite(value):
        _refuse(group, index, "has {} = {} in its state".format(name, value))
    return float(value)


class Step:
    """One step() of the parameters of `groups` ([(params, settings by multopt's names)]) whose
    state `state` (opt.state) holds: everything is checked and every array made when it is made,
    nothing changes until run(). It takes the parameters for which chosen(param) holds (the
    others are the fused loop's), named by their place in their group. With stepping false it
    checks the state alone (a state_dict about to be loaded, `state` its entries by parameter).
    With ema_decay, each parameter has a moving average of its weights ("ema")."""

    def __init__(self, base, rule, rounding, groups, state, chosen, ema_decay=None, stepping=True, state_dtype=None):
        self.base, self.rule, self.ema_decay, self.buckets, self.writes = base, rule, ema_decay, {}, []
        self.state_dtype = state_dtype
        for group, (params, values) in enumerate(groups):
            settings = settings_of(rule, values)
            arrays, self.scalars = _multopt.state_of(base, rule, list(settings.items()), ema_decay is not None)
            for index, param in enumerate(params):
                if not chosen(param) or (stepping and param.grad is None):
                    continue
                self._prepare(group, index, param, settings, arrays, rounding, state.get(param, {}), stepping)

    def _prepare(self, group, index, param, settings, arrays, rounding, held, stepping):
        if param.dtype not in _STEPPED:
            _refuse(group, index, "is {}; multopt steps {}".format(param.dtype, ", ".join(map(str, _STEPPED))))
        if param.layout != torch.strided:
            _refuse(group, index, "is not a dense tensor")
        if param.device.type == "meta":
            _refuse(group, index, "is on meta, which holds no values to step")
        narrow = param.dtype in NARROW
        if MASTER in held and not narrow:
            _refuse(group, index, "has master weights in its state, which are for bfloat16 and float16 parameters, "
                                  "not {}".format(param.dtype))
        if self.state_dtype is not None and (param.dtype == torch.float64 or param.is_complex()):
            _refuse(group, index, "is {}, and state_dtype = {} is for real parameters computed in float (float32, "
                                  "bfloat16, float16)".format(param.dtype, self.state_dtype))
        if narrow and rounding == "stochastic":
            _refuse(group, index, "is {} on {} with rounding='stochastic', which the fused CPU loop alone "
                                  "does (its random bits are its own generator's); rounding='master' or 'nearest' "
                                  "steps it".format(param.dtype, param.device))
        grad = param.grad if stepping else None
        if grad is not None:
            if grad.layout != torch.strided:
                _refuse(group, index, "has a sparse gradient, which multopt steps on the CPU only (by the fused "
                                      "loop)")
            if self.base == "sparse_adam":
                _refuse(group, index, "has a dense gradient, which sparse_adam does not step (as "
                                      "torch.optim.SparseAdam: consider Adam)")
            if grad.device != param.device:
                _refuse(group, index, "is on {} but its gradient on {}".format(param.device, grad.device))
            if grad.dtype != param.dtype and not (narrow and grad.dtype == torch.float32):
                _refuse(group, index, "has a {} gradient but is {}{}".format(
                    grad.dtype, param.dtype, " (its gradient may be that or float32)" if narrow else ""))
            if grad.shape != param.shape:
                _refuse(group, index, "has a gradient of shape {} but is of shape {}".format(
                    list(grad.shape), list(param.shape)))
        dtype = torch.float32 if narrow else param.dtype
        made, found, writes = set(), {}, []
        needed = arrays + ([(MASTER, None)] if narrow and rounding == "master" else [])
        for name, initial in needed:
            stored = self.state_dtype if self.state_dtype is not None and name not in (MASTER, EMA) else dtype
            array = held.get(name)
            if array is None:
                if not stepping:
                    continue
                array = (param.detach().to(torch.float32, memory_format=torch.contiguous_format, copy=True)
                         if name == MASTER else torch.full_like(param, initial, dtype=stored,
                                                                memory_format=torch.contiguous_format))
                made.add(name)
                writes.append((name, array))
            else:
                array = self._held(group, index, param, name, array, stored, writes)
            found[name] = array
        t = 0.0
        if "step" in held:
            t = _number(group, index, held, "step")
            if t < 0 or t != math.floor(t) or not t < _multopt.max_step_count:
                _refuse(group, index, "has step = {} in its state; a step needs a whole number in [0, {})".format(
                    t, _multopt.max_step_count))
        mu_product = None
        for name, initial in self.scalars:  # NAdam's mu_product, the one base with a scalar
            mu_product = _number(group, index, held, name) if name in held else initial
        if not stepping:
            return
        made.discard(MASTER)
        count = _Count(t + 1.0, frozenset(made), mu_product)
        key = (group, param.device, param.dtype, count.t, count.made, mu_product)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = _Bucket(settings, count)
        values = param.detach()
        if narrow:
            theta = found[MASTER] if rounding == "master" else values.float()
            bucket.narrow.append((values, theta))
            grad = grad.float()
        else:
            theta = _real(values)
        bucket.theta.append(_real(theta))
        bucket.grads.append(_real(grad))
        for name, _ in arrays:
            array = found[name]
            if array.dtype in NARROW:
                wide = array.float()
                bucket.narrow_state.append((array, wide))
                array = wide
            bucket.arrays.setdefault(name, []).append(_real(array))
        bucket.steps.append((param, held))
        self.writes.append((param, writes))

    @staticmethod
    def _held(group, index, param, name, array, dtype, writes):
        """A state array the parameter holds, in `dtype` (another floating dtype is converted, as
        the fused loop converts it, and the conversion written to the state) and its shape."""
        if not torch.is_tensor(array):
            _refuse(group, index, "has {} = {!r} in its state, which is not a tensor".format(name, array))
        if array.device != param.device:
            _refuse(group, index, "has its state '{}' on {} but is on {}".format(name, array.device, param.device))
        if array.numel() != param.numel():
            _refuse(group, index, "has {} elements but its state '{}' has {} (was its .data replaced?)".format(
                param.numel(), name, array.numel()))
        if not (array.is_floating_point() or array.is_complex()):
            _refuse(group, index, "has its state '{}' of dtype {}".format(name, array.dtype))
        if array.dtype != dtype or array.shape != param.shape:
            array = array.to(dtype).reshape(param.shape)
            writes.append((name, array))
        return array

    def non_finite(self):
        """Whether a gradient to step holds a NaN or an infinity (read once per device)."""
        found = {}
        for bucket in self.buckets.values():
            for grad in bucket.grads:
                bad = ~torch.isfinite(grad).all()
                found[grad.device] = found[grad.device] | bad if grad.device in found else bad
        return any(bool(bad) for bad in found.values())

    def run(self, state, grad_scale=1.0):
        """Steps every bucket, its gradients divided by grad_scale (a loss scaler's), and writes
        what was made into `state` (opt.state)."""
        direction = BASES[self.base]
        decay_rate, update = RULES[self.rule]
        for bucket in self.buckets.values():
            s, theta, g = bucket.settings, bucket.theta, bucket.grads
            # The prestep (prestep.hpp): unscaling, maximize, decoupled decay, coupled decay.
            if grad_scale != 1.0:
                g = torch._foreach_mul(g, 1.0 / grad_scale)
            if s.get("maximize"):
                g = torch._foreach_neg(g)
            decay_factor = 1.0 - decay_rate(s) * s.get("decoupled_weight_decay", 0.0)
            if decay_factor != 1.0:
                torch._foreach_mul_(theta, decay_factor)
            if s.get("weight_decay", 0.0) != 0.0:
                g = torch._foreach_add(g, theta, alpha=s["weight_decay"])
            d, scale = direction(g, bucket.arrays, s, bucket.count)
            update(theta, d, scale, s)
            if self.ema_decay is not None:
                _average(bucket.arrays[EMA], theta, self.ema_decay, EMA in bucket.count.made)
            for values, wide in bucket.narrow + bucket.narrow_state:
                values.copy_(wide)  # rounded to nearest even, as the fused loop stores it
            for param, held in bucket.steps:
                self._count(state, param, held, bucket.count)
        for param, writes in self.writes:
            if writes:
                state[param].update(writes)

    @staticmethod
    def _count(state, param, held, count):
        """The step count and scalar state after the step: in place where the state holds them as
        the fused loop keeps them, else made as it makes them."""
        entry = state[param]
        step = held.get("step")
        if torch.is_tensor(step):
            step.fill_(count.t)
        else:
            entry["step"] = torch.tensor(count.t, dtype=torch.float32 if step is None else torch.float64)
        if count.mu_product is not None:
            product = held.get("mu_product")
            if torch.is_tensor(product) and product.dtype == torch.float64:
                product.fill_(count.mu_product)
            else:
                entry["mu_product"] = torch.tensor(count.mu_product, dtype=torch.float64)
