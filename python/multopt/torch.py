"""multopt's optimizers as torch.optim optimizers (docs/pytorch.md).

The additive classes (SGD, Adam, ...) take torch.optim's keyword arguments and step exactly as
torch.optim's; the M (multiplicative) and H (hybrid) classes take the keyword arguments of the
paper's package (lr_in, lr_out, lr, g, ...), the class naming the rule. CPU parameters are
stepped by multopt's fused step over the tensors' own memory, on torch.get_num_threads() threads;
parameters on any other device (CUDA) by the same formulas in torch's multi-tensor ops
(multopt/_foreach.py), their state on their device. Every class takes backend="auto" (that
choice), "foreach" (torch's ops for every parameter) or "fused" (the fused loop, CPU parameters
only).

Learning-rate schedulers change param_groups[i]['lr']. The additive rule steps with it as it
is; the M and H classes scale lr_out by lr / initial_lr, initial_lr being the group's lr when
it was made (for M classes, whose rule has no additive lr, the group's lr starts at lr_out), so
that a scheduler moves every step size of the group by the same factor.

bfloat16 and float16 parameters are computed in float32 with float32 state. Every class takes
rounding="master" (the default: a float32 copy of them, stepped and stored rounded),
"nearest" or "stochastic", and rounding_seed (stochastic rounding's key, default 0): the
optimizer's own settings, not a group's, refused where no parameter is 16-bit. The master
weights are state, under "master_weights".

state_dtype=torch.bfloat16 or torch.float16 (every class; default None: float32 for float32,
bfloat16 and float16 parameters, the parameter's dtype otherwise) stores every state array of
the base (exp_avg, ...) in 16 bits, computed in float32 and rounded to nearest even as it is
stored (stochastically where rounding="stochastic"): half the bytes. The master weights and the
moving average stay float32. Refused for float64 and complex parameters.

ema_decay=d (every class; default None, off) keeps an exponential moving average of each
parameter's values, in the same pass as the step, in its state under "ema": the parameter
after its first step, then ema <- d*ema + (1 - d)*p after each step (float32 for bfloat16 and
float16 parameters, averaging their float32 values). averaged_parameters() puts the averages
into the parameters for a block of code (evaluation) and their own values back after it.

Loss scaling follows torch 2.x's convention for fused optimizers: a scaler sets the attributes
grad_scale (the factor the loss was multiplied by) and found_inf (tensors) before step(). With
found_inf > 0 the step changes nothing; with grad_scale, the gradients are divided by it as the
step reads them, and a non-finite gradient anywhere leaves every parameter and its state as it
was and sets found_inf (where given) to 1.
"""

import contextlib
import threading

import torch

from . import _foreach, _multopt

__all__ = ["ExponentialMix"]  # and every optimizer class, added as it is made

# Group keys that are torch.optim's but no setting of multopt's: the constructor's backend picks
# the implementation, and steps read their step counts on the CPU, with no capture.
_IGNORED = {"foreach", "capturable", "differentiable", "fused", "decoupled_weight_decay"}
# What multopt's steps cannot honour: gradients through the step, CUDA graph capture.
_REFUSED_IF_SET = ("capturable", "differentiable")
_NARROW = _foreach.NARROW
_STATE_STORAGE = {torch.bfloat16: "bfloat16", torch.float16: "float16"}  # state_dtype: multopt's name
_BACKENDS = ("auto", "foreach", "fused")


# Each setting's range as multopt's validate() checks it, the one place it is declared
# (include/multopt/validate.hpp): {multopt's name: (low, high, high_closed)}, in the order checked.
_RANGES = _multopt.setting_ranges()
# Where a group holds the settings whose torch.optim argument has another name: (key, index).
# Lion's betas are checked as Adam's here, in [0, 1), as torch.optim's betas; its C++ range is [0, 1].
_TORCH_KEYS = {"beta1": ("betas", 0), "beta2": ("betas", 1), "g_mix": ("g", None)}


def _check_range(setting, value, name=None):
    """Raises torch.optim's ValueError, naming the argument `name` (by default the setting's
    own name), for a value outside the setting's range."""
    low, high, high_closed = _RANGES[setting]
    if not (low <= value and (value <= high if high_closed else value < high)):
        name = name or setting
        raise ValueError(_MESSAGES.get(name, "Invalid {} value: {{}}".format(name)).format(value))


# torch.optim's messages, which the paper's package repeats for the arguments it shares.
_MESSAGES = {
    "lr": "Invalid learning rate: {}",
    "eps": "Invalid epsilon value: {}",
    "beta1": "Invalid beta parameter at index 0: {}",
    "beta2": "Invalid beta parameter at index 1: {}",
}


def _validate(values):
    """The constructor's checks, with torch.optim's messages (the C++ check follows)."""
    for setting in _RANGES:
        key, index = _TORCH_KEYS.get(setting, (setting, None))
        if key not in values or key in _IGNORED:
            continue
        if index is None:
            _check_range(setting, values[key], key)
        else:  # a beta, which torch.optim's messages name by its index
            _check_range(setting, values[key][index])
    if values.get("nesterov") and (values.get("momentum", 0) <= 0 or values.get("dampening", 0) != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    for name in _REFUSED_IF_SET:
        if values.get(name):
            raise ValueError("multopt's steps read their step counts on the CPU: {}=True is not supported".format(name))


class _Optimizer(torch.optim.Optimizer):
    """What every multopt.torch optimizer shares; a subclass names base, rule and arguments.

    The state lives where torch.optim keeps it, in self.state[p], by torch.optim's names; each
    step() is one C++ call over every group, which reads and writes that state."""

    _base = None  # multopt's names: "adam", "multiplicative", ...
    _rule = None
    _arguments = ()  # (name, default) in positional order after params
    _keyword_only = ()  # (name, default): torch.optim's keyword-only arguments (1.13 and 2.x)
    _decoupled = False  # weight_decay is the decoupled kind (AdamW, Lion)

    def __init_subclass__(cls, base, rule, arguments=None, keyword_only=None, decoupled=None, **kwargs):
        """A class below names its base and rule; its arguments, unless it gives them, are the
        rule's (the paper's package's) and then the base's (torch.optim's, in its order), and its
        docstring gains the formulas of both (docs/math.md) and its signature."""
        super().__init_subclass__(**kwargs)
        lr, own, torch_keywords = _BASES[base]
        if arguments is None and rule == "additive":
            arguments, keyword_only = [("lr", lr)] + own, torch_keywords
        elif arguments is None:  # the paper's package has no maximize or foreach: its own arguments only
            arguments, keyword_only = _RULES[rule][1] + [a for a in own if a[0] != "foreach"], []
        cls._base, cls._rule = base, rule
        cls._arguments, cls._keyword_only = tuple(arguments), tuple(keyword_only)
        cls._decoupled = base == "lion" if decoupled is None else decoupled
        cls.__doc__ = ("{}\n\n    {}\n    {}\n\n    {}(params, {}, rounding=None, rounding_seed=None, "
                       "state_dtype=None, ema_decay=None, backend='auto')").format(
            cls.__doc__, _BASES_MATH[base], _RULES[rule][0], cls.__name__,
            ", ".join("{}={!r}".format(n, d) for n, d in cls._arguments + cls._keyword_only))
        __all__.append(cls.__name__)

    # torch 2.x's GradScaler sets grad_scale and found_inf for step() to read (module docstring).
    _step_supports_amp_scaling = True

    def __init__(self, params, *args, rounding=None, rounding_seed=None, state_dtype=None, ema_decay=None,
                 backend="auto", **kwargs):
        names = [name for name, _ in self._arguments]
        if len(args) > len(names):
            raise TypeError("{}() takes at most {} positional arguments after params ({} given)".format(
                type(self).__name__, len(names), len(args)))
        values = dict(self._arguments + self._keyword_only)
        values.update(zip(names, args))
        for name, value in kwargs.items():
            if name not in values:
                raise TypeError("{}() got an unexpected keyword argument '{}'".format(type(self).__name__, name))
            if name in names[:len(args)]:
                raise TypeError("{}() got multiple values for argument '{}'".format(type(self).__name__, name))
            values[name] = value
        _validate(values)
        if backend not in _BACKENDS:
            raise ValueError("multopt: backend = {!r} is not one of {}".format(backend, ", ".join(map(repr, _BACKENDS))))
        self._backend = backend
        self._storage = [(name, str(value)) for name, value in (("rounding", rounding), ("rounding_seed", rounding_seed))
                         if value is not None]
        if state_dtype is not None and state_dtype != torch.float32:
            if state_dtype not in _STATE_STORAGE:
                raise ValueError("multopt: state_dtype = {} is not one of torch.float32, torch.bfloat16, "
                                 "torch.float16".format(state_dtype))
            self._storage.append(("state_storage", _STATE_STORAGE[state_dtype]))
        if ema_decay is not None:
            _check_range("ema_decay", ema_decay)
        self._ema_decay = None if ema_decay is None else float(ema_decay)
        _multopt.check(self._base, self._rule, self._storage, [], self._ema_decay)
        self._stepping = threading.Lock()
        super().__init__(params, values)
        rounding_settings = [entry for entry in self._storage if entry[0] != "state_storage"]
        if rounding_settings and not any(p.dtype in _NARROW for group in self.param_groups for p in group["params"]):
            raise ValueError("multopt: {} = '{}' is for bfloat16 and float16 parameters, and these have none (float "
                             "and double parameters are stored as computed)".format(*rounding_settings[0]))

    # The optimizer's own settings, beside the groups: kept by deepcopy and pickle, and by
    # load_state_dict, which sets the state and the groups alone.
    _OWN = {"_storage": [], "_backend": "auto", "_ema_decay": None}

    def __getstate__(self):
        return {**super().__getstate__(), **{name: getattr(self, name) for name in self._OWN}}

    def __setstate__(self, state):
        for name, default in self._OWN.items():
            state.setdefault(name, getattr(self, name, default))
        super().__setstate__(state)
        self._stepping = threading.Lock()

    def _foreach_steps(self, param):
        """Whether torch's multi-tensor ops step this parameter (else the fused CPU loop)."""
        return self._backend == "foreach" or (self._backend == "auto" and not param.is_cpu)

    def _rounding(self):
        return dict(self._storage).get("rounding", "master")

    def _state_dtype(self):
        """The dtype of the base's state arrays where state_dtype set one, else None."""
        stored = dict(self._storage).get("state_storage")
        return next((dtype for dtype, name in _STATE_STORAGE.items() if name == stored), None)

    def _check_backend(self, group, g):
        """Refuses a parameter of group g that the backend cannot step: off the CPU under "fused",
        16-bit with stochastic rounding under torch's ops (a step refuses them too)."""
        for k, param in enumerate(group["params"]):
            if self._backend == "fused" and not param.is_cpu:
                raise ValueError("multopt: parameter {} of group {} is on {}, and backend='fused' steps CPU tensors "
                                 "(backend='auto' or 'foreach' steps it with torch's multi-tensor ops)".format(
                                     k, g, param.device))
            if self._foreach_steps(param) and param.dtype in _NARROW and self._rounding() == "stochastic":
                raise ValueError("multopt: parameter {} of group {} is {} on {}, stepped by torch's multi-tensor ops, "
                                 "and rounding='stochastic' is the fused CPU loop's alone (its random bits are its "
                                 "own generator's); rounding='master' or 'nearest' steps it".format(
                                     k, g, param.dtype, param.device))

    def _fused_groups(self, groups):
        """[(params, settings)] of the parameters the fused loop steps (under "fused", all: it
        refuses those off the CPU)."""
        return [([p for p in params if not self._foreach_steps(p)], settings) for params, settings in groups]

    def add_param_group(self, param_group):
        """torch.optim's, with every setting checked before the group is added."""
        _validate(param_group)
        group = {**self.defaults, **{key: value for key, value in param_group.items() if key != "params"}}
        self._complete(group)
        _multopt.check(self._base, self._rule, self._storage, [self._group({**group, "params": []})[1]], self._ema_decay)
        super().add_param_group(param_group)
        try:
            self._check_backend(self.param_groups[-1], len(self.param_groups) - 1)
        except ValueError:
            self.param_groups.pop()
            raise
        self._complete(self.param_groups[-1])

    def _complete(self, group):
        """The keys an M or H group has beyond its arguments: lr (for M classes lr_out) and
        initial_lr, the lr a scheduler's factor is taken from."""
        if self._rule != "additive":
            group.setdefault("lr", group["lr_out"])
            group.setdefault("initial_lr", group["lr"])

    def _group(self, group):
        """(parameters, settings by multopt's names) of one param group."""
        settings = []
        for key, value in group.items():
            if key == "params" or key in _IGNORED or not (key in self.defaults or key in ("lr", "initial_lr")):
                continue
            if key == "betas":
                settings += [("beta1", float(value[0])), ("beta2", float(value[1]))]
            elif key == "weight_decay" and (self._decoupled or group.get("decoupled_weight_decay")):
                settings.append(("decoupled_weight_decay", float(value)))
            else:
                settings.append((key, float(value)))
        return group["params"], settings

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # The step releases the GIL: steps of one optimizer from two threads take turns, so that
        # none is lost and none reads state another is writing.
        with self._stepping:
            self._step()
        return loss

    def _step(self):
        # A loss scaler's (module docstring): deleted by torch 2.x's GradScaler after the step.
        grad_scale, found_inf = getattr(self, "grad_scale", None), getattr(self, "found_inf", None)
        if found_inf is not None and found_inf.item() > 0:
            return
        scaling = grad_scale is not None or found_inf is not None
        scale = 1.0 if grad_scale is None else float(grad_scale)
        groups = [self._group(group) for group in self.param_groups]
        # The fused step walks every parameter in C++; under "auto" it hands them back, changing
        # nothing, where one is off the CPU (None), and they are split between it and the
        # steps of other devices.
        skipped = None
        if self._backend != "foreach":
            skipped = _multopt.step(self._base, self._rule, self._storage, groups, self.state, torch.get_num_threads(),
                                    self._ema_decay, scale, scaling, self._backend == "auto")
        if skipped is None:
            fused = self._fused_groups(groups)
            # Every parameter is checked, and every array made, before anything changes (the fused
            # step checks its own before it changes anything).
            device_step = _foreach.Step(self._base, self._rule, self._rounding(), groups, self.state,
                                        self._foreach_steps, ema_decay=self._ema_decay,
                                        state_dtype=self._state_dtype())
            if device_step.buckets:
                _multopt.check(self._base, self._rule, self._storage, [settings for _, settings in groups],
                               self._ema_decay, scale)
            skipped = scaling and device_step.non_finite()
            if not skipped:
                skipped = _multopt.step(self._base, self._rule, self._storage, fused, self.state,
                                        torch.get_num_threads(), self._ema_decay, scale, scaling, False)
            if not skipped:
                device_step.run(self.state, scale)
        if skipped and found_inf is not None:
            found_inf.fill_(1.0)

    @contextlib.contextmanager
    def averaged_parameters(self):
        """Within the block, every parameter that has a moving average (ema_decay; one made at
        its first step) holds it, cast to its dtype; after the block, however it ends, each
        holds its own values again, exactly. For evaluation:

            with opt.averaged_parameters():
                accuracy = evaluate(model)
        """
        if self._ema_decay is None:
            raise ValueError("multopt: averaged_parameters() needs the moving averages of ema_decay, which this "
                             "optimizer was made without")
        own = {}
        with torch.no_grad():
            for group in self.param_groups:
                for param in group["params"]:
                    average = self.state.get(param, {}).get("ema")
                    if average is None or param in own:
                        continue
                    own[param] = param.detach().clone()
                    param.copy_(average.reshape(param.shape))
        try:
            yield
        finally:
            with torch.no_grad():
                for param, values in own.items():
                    param.copy_(values)

    def load_state_dict(self, state_dict):
        """torch.optim's, with what multopt adds: the whole state is checked before anything
        changes; the state of bfloat16 and float16 parameters stays float32 (torch.optim casts
        it to the parameter's dtype), or takes state_dtype, and NAdam's mu_product float64. A state_dict of another
        optimizer of the same base (torch.optim.Adam's into Adam or MAdam) loads its state and
        keeps this one's settings."""
        ours = [{key: value for key, value in group.items() if key != "params"} for group in self.param_groups]
        saved = state_dict["param_groups"]
        if len(saved) == len(ours) and any(not set(o) <= set(s) for o, s in zip(ours, saved)):
            state_dict = dict(state_dict, param_groups=[{**o, "params": s["params"]} for o, s in zip(ours, saved)])
            saved = state_dict["param_groups"]
        taken = {}
        if len(saved) == len(self.param_groups) and all(
                len(s["params"]) == len(o["params"]) for s, o in zip(saved, self.param_groups)):
            for s, o in zip(saved, self.param_groups):
                _validate(s)
                for index, param in zip(s["params"], o["params"]):
                    if index in state_dict["state"]:
                        taken[param] = state_dict["state"][index]
            groups = [self._group({**s, "params": o["params"]}) for s, o in zip(saved, self.param_groups)]
            _multopt.check(self._base, self._rule, self._storage, [settings for _, settings in groups], self._ema_decay)
            _multopt.check_states(self._base, self._rule, self._storage, self._fused_groups(groups), taken,
                                  self._ema_decay)
            _foreach.Step(self._base, self._rule, self._rounding(), groups, taken, self._foreach_steps,
                          ema_decay=self._ema_decay, stepping=False, state_dtype=self._state_dtype())
        super().load_state_dict(state_dict)
        state_dtype = self._state_dtype()
        scalars = {name for name, _ in _multopt.state_of(self._base, self._rule, [], False)[1]}
        for param, state in taken.items():
            for key, value in state.items():
                if not torch.is_tensor(value) or key == "step" or not value.is_floating_point():
                    continue
                if key in scalars:  # mu_product, a number on the CPU as the steps make it
                    self.state[param][key] = value.detach().to("cpu", torch.float64, copy=True)
                elif state_dtype is not None and key not in (_foreach.MASTER, _foreach.EMA):
                    self.state[param][key] = value.detach().to(param.device, state_dtype, copy=True)
                elif param.dtype in _NARROW:
                    self.state[param][key] = value.detach().to(param.device, torch.float32, copy=True)


class ExponentialMix:
    """The hybrid rule's mixing weight g per epoch (multopt's ExponentialMixSchedule): at the
    k-th step() past the first `patience`, g = g0^k (inverse: 1 - (1 - g0)^k); before, g = 1
    (inverse: 0). It sets param_groups[i]['g'] of every group."""

    def __init__(self, optimizer, g0, patience=-1, inverse=False):
        _check_range("g0", g0)
        self.optimizer, self.g0, self.patience, self.inverse, self.epoch = optimizer, g0, patience, inverse, 0

    def step(self):
        epoch = self.epoch + 1  # counted once g is known: a refused epoch changes nothing
        g = _multopt.exponential_mix(self.g0, self.patience, self.inverse, epoch)
        for group in self.optimizer.param_groups:
            group["g"] = g
        self.epoch = epoch

    def state_dict(self):
        return {"epoch": self.epoch}

    def load_state_dict(self, state_dict):
        self.epoch = state_dict["epoch"]


def _curve(make):
    """multopt's curve as a Python function of the step, which LambdaLR's state_dict leaves out
    as it leaves out every function (it would try to copy the attributes of any other callable)."""
    def made(*args, **kwargs):
        curve = make(*args, **kwargs)
        return lambda step: curve(step)
    made.__name__, made.__doc__ = make.__name__, make.__doc__
    __all__.append(make.__name__)
    return made


# Per-step factors of lr for torch.optim.lr_scheduler.LambdaLR: multopt's curves
# (LambdaLR(opt, multopt.torch.warmup_cosine(100, 1000))).
linear, cosine, exponential, step_decay, warmup_cosine = map(_curve, (
    _multopt.linear, _multopt.cosine, _multopt.exponential, _multopt.step_decay, _multopt.warmup_cosine))

# Each base's additive lr default (torch.optim's), its own arguments in torch.optim's order and
# torch.optim's keyword-only ones, by multopt's name.
_BETAS = ("betas", (0.9, 0.999))
# torch 2.x's keyword-only arguments of the classes it has; torch 1.13's are among them.
_ADAM_KEYWORDS = [("foreach", None), ("maximize", False), ("capturable", False), ("differentiable", False),
                  ("fused", None)]
_CAPTURABLE_KEYWORDS = [("maximize", False), ("differentiable", False), ("capturable", False)]
_DECOUPLED_KEYWORDS = [("decoupled_weight_decay", False)] + _CAPTURABLE_KEYWORDS
_BASES = {
    "sgd": (1e-3, [("momentum", 0), ("dampening", 0), ("weight_decay", 0), ("nesterov", False)],
            [("maximize", False), ("foreach", None), ("differentiable", False), ("fused", None)]),
    "adam": (1e-3, [_BETAS, ("eps", 1e-8), ("weight_decay", 0), ("amsgrad", False)], _ADAM_KEYWORDS),
    "adagrad": (1e-2, [("lr_decay", 0), ("weight_decay", 0), ("initial_accumulator_value", 0), ("eps", 1e-10),
                       ("foreach", None)], [("maximize", False), ("differentiable", False), ("fused", None)]),
    "rmsprop": (1e-2, [("alpha", 0.99), ("eps", 1e-8), ("weight_decay", 0), ("momentum", 0), ("centered", False),
                       ("foreach", None)], _CAPTURABLE_KEYWORDS),
    "adamax": (2e-3, [_BETAS, ("eps", 1e-8), ("weight_decay", 0), ("foreach", None)], _CAPTURABLE_KEYWORDS),
    "nadam": (2e-3, [_BETAS, ("eps", 1e-8), ("weight_decay", 0), ("momentum_decay", 4e-3), ("foreach", None)],
              _DECOUPLED_KEYWORDS),
    "radam": (1e-3, [_BETAS, ("eps", 1e-8), ("weight_decay", 0), ("foreach", None)], _DECOUPLED_KEYWORDS),
    "adadelta": (1.0, [("rho", 0.9), ("eps", 1e-6), ("weight_decay", 0), ("foreach", None)], _CAPTURABLE_KEYWORDS),
    "lion": (1e-4, [("betas", (0.9, 0.99)), ("weight_decay", 0)], [("maximize", False)]),
    "sparse_adam": (1e-3, [_BETAS, ("eps", 1e-8), ("maximize", False)], []),
}
# Each base's direction d and scale s, as docs/math.md states them (weight decay and the other
# stages before the base are in its "One step, in order").
_BASES_MATH = {
    "sgd": "b ← μ·b + (1 − dampening)·g (b ← g on its first step), d = b, or g + μ·b with nesterov "
           "(d = g without momentum); s = 1. (docs/math.md#sgd)",
    "adam": "m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g² (v ← max(v_max, v) with amsgrad), "
            "d = m / (√v / √(1 − β2^t) + ε); s = 1 / (1 − β1^t). (docs/math.md#adam)",
    "adagrad": "S ← S + g², d = g / (√S + ε); s = 1 / (1 + (t − 1)·lr_decay). (docs/math.md#adagrad)",
    "rmsprop": "q ← α·q + (1 − α)·g², a ← α·a + (1 − α)·g (centered), d = g / (√(q − a²) + ε) "
               "(not centered: g / (√q + ε)), with momentum b ← μ·b + d, d = b; s = 1. (docs/math.md#rmsprop)",
    "adamax": "m ← β1·m + (1 − β1)·g, u ← max(β2·u, |g| + ε), d = m / u; s = 1 / (1 − β1^t). "
              "(docs/math.md#adamax)",
    "nadam": "μ_t = β1·(1 − ½·0.96^(t·ψ)), Π ← Π·μ_t, m and v as Adam's, d = [(1 − μ_t)/(1 − Π)·g + "
             "μ_{t+1}/(1 − Π·μ_{t+1})·m] / (√(v / (1 − β2^t)) + ε); s = 1. (docs/math.md#nadam)",
    "radam": "m and v as Adam's; where the rectification ρ_t > 5, d = m·r_t·√(1 − β2^t) / (√v + ε), "
             "else d = m; s = 1 / (1 − β1^t). (docs/math.md#radam)",
    "adadelta": "a ← ρ·a + (1 − ρ)·g², d = √(b + ε) / √(a + ε)·g, b ← ρ·b + (1 − ρ)·d²; s = 1. "
                "(docs/math.md#adadelta)",
    "lion": "d = sign(β1·m + (1 − β1)·g), m ← β2·m + (1 − β2)·g; s = 1; weight_decay is decoupled. "
            "(docs/math.md#lion)",
    "sparse_adam": "m and v as Adam's, at the rows a sparse gradient touches, d = m / (√v + ε); "
                   "s = √(1 − β2^t) / (1 − β1^t). (docs/math.md#sparse-rows)",
}
# Each rule's update of θ from d and s, and the arguments of the paper's package, before the base's.
_RULES = {
    "additive": ("θ ← θ − s·lr·d", None),
    "multiplicative": ("θ ← θ − s·lr_out·|θ|·tanh(lr_in·d)", [("lr_in", 1.0), ("lr_out", 1e-3)]),
    "hybrid": ("θ ← θ − g·s·lr_out·|θ|·tanh(lr_in·d) − (1 − g)·s·lr·d",
               [("lr_in", 1.0), ("lr_out", 1e-3), ("lr", 1e-3), ("g", 1.0)]),
}


# torch.optim's optimizers, each also with the multiplicative (M) and hybrid (H) rule.
class SGD(_Optimizer, base="sgd", rule="additive"):
    """SGD with momentum, dampening and Nesterov look-ahead, as torch.optim.SGD."""
class MSGD(_Optimizer, base="sgd", rule="multiplicative"):
    """SGD's direction with the multiplicative update."""
class HSGD(_Optimizer, base="sgd", rule="hybrid"):
    """SGD's direction with the hybrid update."""


class Adam(_Optimizer, base="adam", rule="additive"):
    """Adam, with optional AMSGrad, as torch.optim.Adam."""
class MAdam(_Optimizer, base="adam", rule="multiplicative"):
    """Adam's direction with the multiplicative update."""
class HAdam(_Optimizer, base="adam", rule="hybrid"):
    """Adam's direction with the hybrid update."""


class AdamW(_Optimizer, base="adam", rule="additive", decoupled=True, keyword_only=_ADAM_KEYWORDS,
            arguments=[("lr", 1e-3), _BETAS, ("eps", 1e-8), ("weight_decay", 1e-2), ("amsgrad", False)]):
    """Adam with the decoupled weight decay θ ← θ·(1 − lr·weight_decay), as torch.optim.AdamW."""


class Adagrad(_Optimizer, base="adagrad", rule="additive"):
    """Adagrad with learning-rate decay and an initial accumulator, as torch.optim.Adagrad."""
class MAdagrad(_Optimizer, base="adagrad", rule="multiplicative"):
    """Adagrad's direction with the multiplicative update."""
class HAdagrad(_Optimizer, base="adagrad", rule="hybrid"):
    """Adagrad's direction with the hybrid update."""


class RMSprop(_Optimizer, base="rmsprop", rule="additive"):
    """RMSprop, optionally centered and with momentum, as torch.optim.RMSprop."""
class MRMSprop(_Optimizer, base="rmsprop", rule="multiplicative"):
    """RMSprop's direction with the multiplicative update."""
class HRMSprop(_Optimizer, base="rmsprop", rule="hybrid"):
    """RMSprop's direction with the hybrid update."""


class Adamax(_Optimizer, base="adamax", rule="additive"):
    """Adamax, Adam's infinity-norm variant, as torch.optim.Adamax."""
class MAdamax(_Optimizer, base="adamax", rule="multiplicative"):
    """Adamax's direction with the multiplicative update."""
class HAdamax(_Optimizer, base="adamax", rule="hybrid"):
    """Adamax's direction with the hybrid update."""


class NAdam(_Optimizer, base="nadam", rule="additive"):
    """NAdam, Adam with Nesterov momentum, as torch.optim.NAdam of torch 2."""
class MNAdam(_Optimizer, base="nadam", rule="multiplicative"):
    """NAdam's direction with the multiplicative update."""
class HNAdam(_Optimizer, base="nadam", rule="hybrid"):
    """NAdam's direction with the hybrid update."""


class RAdam(_Optimizer, base="radam", rule="additive"):
    """RAdam, Adam with its variance rectified, as torch.optim.RAdam."""
class MRAdam(_Optimizer, base="radam", rule="multiplicative"):
    """RAdam's direction with the multiplicative update."""
class HRAdam(_Optimizer, base="radam", rule="hybrid"):
    """RAdam's direction with the hybrid update."""


class Adadelta(_Optimizer, base="adadelta", rule="additive"):
    """Adadelta, as torch.optim.Adadelta."""
class MAdadelta(_Optimizer, base="adadelta", rule="multiplicative"):
    """Adadelta's direction with the multiplicative update."""
class HAdadelta(_Optimizer, base="adadelta", rule="hybrid"):
    """Adadelta's direction with the hybrid update."""


class Lion(_Optimizer, base="lion", rule="additive"):
    """Lion (Chen et al., 2023): the sign of an interpolation of momentum and gradient."""
class MLion(_Optimizer, base="lion", rule="multiplicative"):
    """Lion's direction with the multiplicative update."""
class HLion(_Optimizer, base="lion", rule="hybrid"):
    """Lion's direction with the hybrid update."""


class SparseAdam(_Optimizer, base="sparse_adam", rule="additive"):
    """Lazy Adam for sparse gradients, as torch.optim.SparseAdam."""
class MSparseAdam(_Optimizer, base="sparse_adam", rule="multiplicative"):
    """SparseAdam's direction with the multiplicative update."""
class HSparseAdam(_Optimizer, base="sparse_adam", rule="hybrid"):
    """SparseAdam's direction with the hybrid update."""
