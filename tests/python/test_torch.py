"""multopt.torch against torch.optim (additive rule) and against reference.py (docs/math.md's
multiplicative and hybrid rules in torch ops), and the surface a training script uses."""

import copy
import io

import pytest
import torch

import multopt.torch as mt
from reference import Reference


def model(dtype, seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    return net.to(dtype)


def batch(dtype, step):
    generator = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(16, 5, generator=generator, dtype=dtype)
    y = torch.randn(16, 3, generator=generator, dtype=dtype)
    return x, y


def train(net, opt, steps, dtype, first=0, scheduler=None):
    # An optimizer that maximizes climbs the negated loss: a run that converges, where climbing
    # the loss itself would grow without bound and magnify every last-bit difference.
    sign = -1.0 if any(group.get("maximize") for group in getattr(opt, "param_groups", ())) else 1.0
    for k in range(first, first + steps):
        x, y = batch(dtype, k)
        opt.zero_grad()
        (sign * torch.nn.functional.mse_loss(net(x), y)).backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
    return [p.detach().clone() for p in net.parameters()]


def assert_close(mine, theirs, rel):
    for a, b in zip(mine, theirs):
        scale = b.abs().max().item() or 1.0
        assert (a - b).abs().max().item() <= rel * scale, ((a - b).abs().max().item(), scale)


ADDITIVE = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.02, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.01)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01)),
    ("Adamax", dict(lr=0.01, weight_decay=0.01)),
    ("RAdam", dict(lr=0.01)),
    ("Adadelta", dict(lr=0.5, rho=0.8)),
]


@pytest.mark.parametrize("dtype,rel", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("name,settings", ADDITIVE)
def test_additive_classes_equal_torch_optim(name, settings, dtype, rel):
    mine, theirs = model(dtype), model(dtype)
    a = train(mine, getattr(mt, name)(mine.parameters(), **settings), 30, dtype)
    b = train(theirs, getattr(torch.optim, name)(theirs.parameters(), **settings), 30, dtype)
    assert_close(a, b, rel)


REFERENCE_CASES = [
    ("sgd", dict()),
    ("sgd", dict(momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("sgd", dict(momentum=0.7, nesterov=True)),
    ("adam", dict()),
    ("adam", dict(betas=(0.8, 0.99), eps=1e-6, weight_decay=0.02, amsgrad=True)),
    ("adagrad", dict(lr_decay=0.01, initial_accumulator_value=0.1)),
    ("rmsprop", dict(alpha=0.9)),
    ("rmsprop", dict(momentum=0.5, centered=True, weight_decay=0.01)),
]
CLASS_OF = {"sgd": "SGD", "adam": "Adam", "adagrad": "Adagrad", "rmsprop": "RMSprop"}


@pytest.mark.parametrize("rule,rates", [("multiplicative", dict(lr_in=0.7, lr_out=0.02)),
                                        ("hybrid", dict(lr_in=0.7, lr_out=0.02, lr=0.01, g=0.6))])
@pytest.mark.parametrize("base,settings", REFERENCE_CASES)
def test_multiplicative_and_hybrid_equal_reference(base, settings, rule, rates):
    dtype = torch.float64
    mine, theirs = model(dtype), model(dtype)
    cls = getattr(mt, ("M" if rule == "multiplicative" else "H") + CLASS_OF[base])
    a = train(mine, cls(mine.parameters(), **rates, **settings), 30, dtype)
    b = train(theirs, Reference(theirs.parameters(), base, rule, **rates, **settings), 30, dtype)
    assert_close(a, b, 1e-10)


def test_reference_script_needs_only_its_constructor_changed():
    # A training script for the paper's package: groups, closure, scheduler; only the
    # constructor line names multopt.
    dtype = torch.float64
    mine, theirs = model(dtype, seed=3), model(dtype, seed=3)
    groups = lambda net: [{"params": net[0].parameters()}, {"params": net[2].parameters(), "lr_out": 0.005}]
    opt = mt.HAdam(groups(mine), lr_in=1.0, lr_out=0.01, lr=0.002, g=0.8)
    x, y = batch(dtype, 0)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(mine(x), y)
        loss.backward()
        return loss

    losses = [opt.step(closure).item() for _ in range(40)]
    assert losses[-1] < losses[0]
    # The same by the reference's formulas, group by group.
    first = Reference(theirs[0].parameters(), "adam", "hybrid", lr_in=1.0, lr_out=0.01, lr=0.002, g=0.8)
    second = Reference(theirs[2].parameters(), "adam", "hybrid", lr_in=1.0, lr_out=0.005, lr=0.002, g=0.8)
    for _ in range(40):
        theirs.zero_grad()
        torch.nn.functional.mse_loss(theirs(x), y).backward()
        first.step()
        second.step()
    assert_close(list(mine.parameters()), list(theirs.parameters()), 1e-10)


def test_state_dict_round_trip_continues_bit_identically():
    dtype = torch.float64
    for name, settings in [("Adam", dict(lr=0.01, amsgrad=True)), ("MAdam", dict(lr_out=0.01)),
                           ("HRMSprop", dict(lr_out=0.01, lr=0.01, g=0.5, momentum=0.5, centered=True)),
                           ("MSGD", dict(lr_out=0.02, momentum=0.9)), ("NAdam", dict(lr=0.01))]:
        net = model(dtype)
        opt = getattr(mt, name)(net.parameters(), **settings)
        train(net, opt, 5, dtype)
        buffer = io.BytesIO()
        torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buffer)
        continued = train(net, opt, 5, dtype, first=5)
        buffer.seek(0)
        saved = torch.load(buffer)
        resumed_net = model(dtype, seed=9)
        resumed_net.load_state_dict(saved["model"])
        resumed = getattr(mt, name)(resumed_net.parameters(), **settings)
        resumed.load_state_dict(saved["opt"])
        again = train(resumed_net, resumed, 5, dtype, first=5)
        for a, b in zip(continued, again):
            assert torch.equal(a, b), name


def test_torch_adam_state_moves_into_adam_and_madam():
    dtype = torch.float64
    net = model(dtype)
    torch_adam = torch.optim.Adam(net.parameters(), lr=0.01)
    train(net, torch_adam, 7, dtype)
    saved = copy.deepcopy(torch_adam.state_dict())
    twin = copy.deepcopy(net)
    expected = train(net, torch_adam, 5, dtype, first=7)

    adam = mt.Adam(twin.parameters(), lr=0.5)  # the state_dict's lr wins, as in torch.optim
    adam.load_state_dict(saved)
    assert adam.param_groups[0]["lr"] == 0.01
    assert_close(train(twin, adam, 5, dtype, first=7), expected, 1e-12)

    madam = mt.MAdam(model(dtype).parameters(), lr_out=0.02)
    madam.load_state_dict(saved)
    assert madam.param_groups[0]["lr_out"] == 0.02  # its own settings stay
    state = madam.state_dict()["state"]
    for k, s in saved["state"].items():
        assert torch.equal(state[k]["exp_avg"], s["exp_avg"]) and float(state[k]["step"]) == 7.0


def test_param_groups_add_param_group_and_parameters_without_gradient():
    dtype = torch.float64
    net = model(dtype)
    opt = mt.Adam(net[0].parameters(), lr=0.01)
    opt.add_param_group({"params": net[2].parameters(), "lr": 0.05, "betas": (0.5, 0.9)})
    assert opt.param_groups[1]["eps"] == 1e-8 and opt.param_groups[1]["lr"] == 0.05
    twin = copy.deepcopy(net)
    ref = torch.optim.Adam(twin[0].parameters(), lr=0.01)
    ref.add_param_group({"params": twin[2].parameters(), "lr": 0.05, "betas": (0.5, 0.9)})
    assert_close(train(net, opt, 10, dtype), train(twin, ref, 10, dtype), 1e-12)
    # A parameter without a gradient is left alone and keeps its state, as in torch.optim.
    for net_, opt_ in ((net, opt), (twin, ref)):
        opt_.zero_grad(set_to_none=True)
        x, y = batch(dtype, 99)
        torch.nn.functional.mse_loss(net_[0](x).sum(1, keepdim=True), y[:, :1]).backward()
        opt_.step()
    assert_close(list(net.parameters()), list(twin.parameters()), 1e-12)
    assert_close(train(net, opt, 3, dtype, first=20), train(twin, ref, 3, dtype, first=20), 1e-12)


def test_schedulers_move_lr_and_lr_out():
    dtype = torch.float64
    mine, theirs = model(dtype), model(dtype)
    opt = mt.Adam(mine.parameters(), lr=0.01)
    ref = torch.optim.Adam(theirs.parameters(), lr=0.01)
    a = train(mine, opt, 12, dtype, scheduler=torch.optim.lr_scheduler.StepLR(opt, 3, 0.5))
    b = train(theirs, ref, 12, dtype, scheduler=torch.optim.lr_scheduler.StepLR(ref, 3, 0.5))
    assert_close(a, b, 1e-12)
    # MAdam: lr starts at lr_out and the step uses lr_out · lr / initial_lr.
    mine, theirs = model(dtype), model(dtype)
    opt = mt.MAdam(mine.parameters(), lr_out=0.02)
    assert opt.param_groups[0]["lr"] == 0.02
    schedule = torch.optim.lr_scheduler.StepLR(opt, 3, 0.5)
    ref = Reference(theirs.parameters(), "adam", "multiplicative", lr_out=0.02)
    for k in range(12):
        train(mine, opt, 1, dtype, first=k, scheduler=schedule)
        ref.lr_out = 0.02 * 0.5 ** (k // 3)
        train(theirs, ref, 1, dtype, first=k)
    assert_close(list(mine.parameters()), list(theirs.parameters()), 1e-10)


def test_multopt_schedules_from_python():
    dtype = torch.float64
    net = model(dtype)
    opt = mt.HSGD(net.parameters(), lr_out=0.01, lr=0.01, g=1.0)
    mix = mt.ExponentialMix(opt, g0=0.5)
    values = []
    for _ in range(3):
        mix.step()
        values.append(opt.param_groups[0]["g"])
    assert values == [0.5, 0.25, 0.125]
    warmup = torch.optim.lr_scheduler.LambdaLR(opt, mt.warmup_cosine(4, 10))
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        train(net, opt, 1, dtype, scheduler=warmup)
    assert lrs[:5] == pytest.approx([0.0, 0.0025, 0.005, 0.0075, 0.01])


def test_threads_give_the_same_parameters():
    torch.manual_seed(5)
    values = torch.randn(1 << 18)
    grads = torch.randn(1 << 18)
    results = []
    default = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        p = values.clone().requires_grad_()
        p.grad = grads.clone()
        opt = mt.HAdam([p], lr_out=0.01, lr=0.01, g=0.5)
        for _ in range(3):
            opt.step()
        results.append(p.detach())
    torch.set_num_threads(default)
    assert torch.equal(results[0], results[1])


def test_dtypes_multopt_does_not_step_are_refused():
    # bfloat16 and float16: test_mixed_precision.py; complex: test_torch_state.py.
    p = torch.zeros(4, dtype=torch.int32)
    p.grad = torch.ones(4, dtype=torch.int32)
    with pytest.raises(ValueError, match="dtype Int are not supported; supported: Float, Double, BFloat16, Half"):
        mt.MAdam([p]).step()
    assert torch.equal(p, torch.zeros(4, dtype=torch.int32))


def test_tensors_multopt_cannot_step_are_refused_and_left_alone():
    kept = torch.ones(3, requires_grad=True)
    kept.grad = torch.ones(3)
    meta = torch.zeros(3, device="meta", requires_grad=True)
    meta.grad = torch.zeros(3, device="meta")
    with pytest.raises(ValueError, match="parameter 0 of group 1 is on meta, which holds no values"):
        mt.Adam([{"params": [kept]}, {"params": [meta]}]).step()
    assert torch.equal(kept.detach(), torch.ones(3))

    sparse = torch.zeros(4, requires_grad=True)
    sparse.grad = torch.sparse_coo_tensor([[1]], [1.0], (4,))
    with pytest.raises(ValueError, match="parameter 0 of group 0 has a sparse gradient, which adam does not step"):
        mt.Adam([sparse]).step()
    assert not sparse.detach().any()


def test_arguments_are_checked_with_torch_optim_messages():
    params = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(TypeError, match="unexpected keyword argument 'u_func'"):
        mt.MAdam(params, u_func=None)
    with pytest.raises(TypeError, match="unexpected keyword argument 'lr_in'"):
        mt.Adam(params, lr_in=1.0)
    with pytest.raises(ValueError, match="Invalid learning rate: -0.1"):
        mt.Adam(params, lr=-0.1)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 1.0"):
        mt.MAdam(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Invalid epsilon value: -1"):
        mt.RMSprop(params, eps=-1)
    with pytest.raises(ValueError, match="Invalid momentum value: -0.5"):
        mt.MSGD(params, momentum=-0.5)
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        mt.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid lr_out value: -1"):
        mt.HAdagrad(params, lr_out=-1)
    with pytest.raises(ValueError, match="Invalid g value: 1.5"):
        mt.HAdam(params, g=1.5)
    with pytest.raises(ValueError, match="capturable=True is not supported"):
        mt.Adam(params, capturable=True)
    # A value set in param_groups later is checked by the step, which then changes nothing.
    p = torch.ones(2, requires_grad=True)
    p.grad = torch.ones(2)
    opt = mt.MAdam([p], lr_out=0.1)
    opt.param_groups[0]["lr_in"] = float("nan")
    with pytest.raises(ValueError, match="lr_in = nan"):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(2)) and opt.state_dict()["state"] == {}


def test_arguments_are_checked_against_the_ranges_of_the_cpp_validate():
    # One declaration (validate.hpp's setting_ranges): what torch.optim takes and multopt refuses,
    # a momentum or an alpha above 1, an infinite rate, is refused too, with torch.optim's words.
    params = [torch.zeros(2, requires_grad=True)]
    assert mt._multopt.setting_ranges()["momentum"] == (0.0, 1.0, True)
    assert mt._multopt.setting_ranges()["beta2"] == (0.0, 1.0, False)
    with pytest.raises(ValueError, match=r"^Invalid momentum value: 1.5$"):
        mt.SGD(params, lr=0.1, momentum=1.5)
    with pytest.raises(ValueError, match=r"^Invalid alpha value: 2$"):
        mt.RMSprop(params, alpha=2)
    with pytest.raises(ValueError, match=r"^Invalid learning rate: inf$"):
        mt.Adam(params, lr=float("inf"))
    with pytest.raises(ValueError, match=r"^Invalid rho value: 1.5$"):
        mt.Adadelta(params).add_param_group({"params": [torch.zeros(1, requires_grad=True)], "rho": 1.5})


def test_every_class_steps():
    for name in mt.__all__:
        cls = getattr(mt, name)
        if not isinstance(cls, type) or not issubclass(cls, torch.optim.Optimizer):
            continue
        p = torch.ones(3, dtype=torch.float64, requires_grad=True)
        p.grad = torch.full((3,), 0.5, dtype=torch.float64)
        if "SparseAdam" in name:  # as torch.optim.SparseAdam, sparse gradients only
            p.grad = p.grad.to_sparse()
        cls([p]).step() if name != "SGD" else cls([p], lr=0.1).step()
        assert (p.detach() < 1).all(), name


def test_random_models_and_settings_equal_reference():
    # Settings and a convolutional model no other test uses, drawn from a seeded generator.
    draw = torch.Generator().manual_seed(2024)
    pick = lambda *values: values[int(torch.randint(len(values), (1,), generator=draw))]
    uniform = lambda low, high: low + (high - low) * float(torch.rand(1, generator=draw))
    for case in range(12):
        base, rule = pick("sgd", "adam", "adagrad", "rmsprop"), pick("multiplicative", "hybrid")
        settings = {"lr_in": uniform(0.1, 2.0), "lr_out": uniform(1e-3, 5e-2), "weight_decay": pick(0.0, uniform(0, 0.05))}
        if rule == "hybrid":
            settings.update(lr=uniform(1e-3, 5e-2), g=uniform(0, 1))
        if base == "sgd":
            momentum = pick(0.0, uniform(0.1, 0.95))
            settings.update(momentum=momentum, nesterov=momentum > 0 and pick(True, False))
            if not settings["nesterov"]:
                settings["dampening"] = pick(0.0, uniform(0, 0.5))
        elif base == "adam":
            settings.update(betas=(uniform(0.5, 0.95), uniform(0.9, 0.9999)), amsgrad=pick(True, False))
        elif base == "adagrad":
            settings.update(lr_decay=pick(0.0, uniform(0, 0.1)), initial_accumulator_value=uniform(0, 0.5))
        else:
            settings.update(alpha=uniform(0.8, 0.999), momentum=pick(0.0, uniform(0, 0.9)), centered=pick(True, False))
        nets = []
        for _ in range(2):
            torch.manual_seed(case)
            nets.append(torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                            torch.nn.Linear(4 * 4 * 4, 2)).double())
        cls = getattr(mt, ("M" if rule == "multiplicative" else "H") + CLASS_OF[base])
        opts = [cls(nets[0].parameters(), **settings), Reference(nets[1].parameters(), base, rule, **settings)]
        for step in range(20):
            x = torch.randn(8, 2, 6, 6, generator=torch.Generator().manual_seed(step), dtype=torch.float64)
            for net, opt in zip(nets, opts):
                opt.zero_grad()
                net(x).square().mean().backward()
                opt.step()
        assert_close(list(nets[0].parameters()), list(nets[1].parameters()), 1e-10)


def test_gradients_set_to_none_and_mixed_dtypes_step_as_torch_optim():
    # Every step's gradients are new tensors (zero_grad(set_to_none=True)): multopt binds again
    # and carries the state over. One layer is float32, the other float64.
    nets = []
    for _ in range(2):
        torch.manual_seed(4)
        net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
        net[2].double()
        nets.append(net)
    opts = [mt.Adam(nets[0].parameters(), lr=0.01), torch.optim.Adam(nets[1].parameters(), lr=0.01)]
    for step in range(15):
        x, y = batch(torch.float32, step)
        for net, opt in zip(nets, opts):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(net[2](net[1](net[0](x)).double()), y.double()).backward()
            opt.step()
    # The float64 layer's inputs come from the float32 one: float32's tolerance for both.
    assert_close(list(nets[0].parameters()), list(nets[1].parameters()), 1e-5)
    assert [p.dtype for p in nets[0].parameters()] == [torch.float32] * 2 + [torch.float64] * 2
