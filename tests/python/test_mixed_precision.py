"""bfloat16 and float16 parameters in multopt.torch: master weights follow a float32 run bit for
bit, nearest rounding is the float32 step rounded, stochastic rounding is reproducible from its
seed on any number of threads, the master weights go through state_dict(), and torch.optim.Adam's
bf16 arithmetic against them."""

import io

import pytest
import torch

import multopt.torch as mt

NARROW = [torch.bfloat16, torch.float16]


def model(dtype, seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    return net.to(dtype)


def backward(net, step):
    """Gives the model the gradients of the k-th batch's loss in its dtype: computed in float32
    at its parameters and rounded (torch 1.13 has no float16 matrix product on the CPU)."""
    generator = torch.Generator().manual_seed(1000 + step)
    x, y = torch.randn(16, 5, generator=generator), torch.randn(16, 3, generator=generator)
    wide = float32_twin(net)
    (wide(x) - y).square().mean().backward()
    for p, q in zip(net.parameters(), wide.parameters()):
        p.grad = q.grad.to(p.dtype)


def float32_twin(net):
    """A float32 model starting from the 16-bit model's parameters, widened (exactly)."""
    twin = model(torch.float32)
    with torch.no_grad():
        for p, q in zip(twin.parameters(), net.parameters()):
            p.copy_(q.float())
    return twin


def step_side_by_side(narrow, wide, opt16, opt32, after_each_step=lambda: None, steps=30):
    """Steps the 16-bit model with opt16 and its float32 twin with opt32, the twin on the 16-bit
    model's gradients widened (exactly), batch after batch."""
    for step in range(steps):
        backward(narrow, step)
        for p, q in zip(wide.parameters(), narrow.parameters()):
            p.grad = q.grad.float()
        opt16.step()
        opt32.step()
        after_each_step()


def master_weights(opt):
    """Every parameter's master weights, in the parameters' order."""
    return [state["master_weights"] for state in opt.state_dict()["state"].values()]


def bits(tensors):
    return [t.view(torch.int16) if t.element_size() == 2 else t.view(torch.int32) for t in tensors]


def same_bits(a, b):
    return all(torch.equal(x, y) for x, y in zip(bits(a), bits(b)))


@pytest.mark.parametrize("dtype", NARROW)
@pytest.mark.parametrize("name,settings", [("Adam", dict(lr=0.01, weight_decay=0.01)),
                                           ("HAdam", dict(lr_out=0.01, lr=0.01, g=0.5))])
def test_master_weights_follow_a_float32_run_bit_for_bit(dtype, name, settings):
    # The float32 run steps from the rounded start with the 16-bit model's gradients widened:
    # its parameters are the master weights, bit for bit, and the 16-bit parameters are them
    # rounded to nearest.
    narrow = model(dtype)
    wide = float32_twin(narrow)
    opt16 = getattr(mt, name)(narrow.parameters(), **settings)
    opt32 = getattr(mt, name)(wide.parameters(), **settings)
    step_side_by_side(narrow, wide, opt16, opt32)
    params32 = [p.detach() for p in wide.parameters()]
    assert same_bits(master_weights(opt16), params32)
    assert same_bits([p.detach() for p in narrow.parameters()], [p.to(dtype) for p in params32])
    state = opt16.state_dict()["state"][0]
    assert state["exp_avg"].dtype == torch.float32 and state["master_weights"].dtype == torch.float32


def test_master_weights_equal_torch_optim_adam_in_float32():
    # The same float32 run by torch.optim.Adam: float32's tolerance, as for float32 models.
    narrow = model(torch.bfloat16)
    wide = float32_twin(narrow)
    opt16 = mt.Adam(narrow.parameters(), lr=0.01)
    opt32 = torch.optim.Adam(wide.parameters(), lr=0.01)
    step_side_by_side(narrow, wide, opt16, opt32)
    for a, b in zip(master_weights(opt16), wide.parameters()):
        assert (a - b).abs().max().item() <= 1e-5 * b.abs().max().item()


def test_float32_gradients_of_bfloat16_parameters():
    # torch refuses p.grad = <float32 tensor> for a bf16 p, but a float32 gradient can be set
    # through p.grad.data (as gradient accumulation in float32 would): multopt steps it as it is.
    torch.manual_seed(3)
    values, grads = torch.randn(1000), torch.randn(1000)
    p16 = values.to(torch.bfloat16).requires_grad_()
    with pytest.raises(RuntimeError, match="assigned grad has data of a different type"):
        p16.grad = grads
    p16.grad = torch.zeros_like(p16)
    p16.grad.data = grads
    p32 = p16.detach().float().requires_grad_()
    p32.grad = grads.clone()
    opt16, opt32 = mt.MAdam([p16], lr_out=0.01), mt.MAdam([p32], lr_out=0.01)
    for _ in range(5):
        opt16.step()
        opt32.step()
    assert same_bits(master_weights(opt16), [p32.detach()])


@pytest.mark.parametrize("dtype", NARROW)
def test_nearest_rounding_is_the_float32_step_rounded(dtype):
    # Each step: the float32 step from the 16-bit parameters widened, with float32 state, rounded
    # to nearest even (torch's .to(dtype)).
    narrow = model(dtype)
    wide = float32_twin(narrow)
    opt16 = mt.Adam(narrow.parameters(), lr=0.01, rounding="nearest")
    opt32 = mt.Adam(wide.parameters(), lr=0.01)

    def round_the_float32_run_and_compare():
        with torch.no_grad():
            for p in wide.parameters():
                p.copy_(p.to(dtype).float())
        assert same_bits([p.detach() for p in narrow.parameters()], [p.detach().to(dtype) for p in wide.parameters()])

    step_side_by_side(narrow, wide, opt16, opt32, round_the_float32_run_and_compare)
    assert "master_weights" not in opt16.state_dict()["state"][0]


def stochastic_run(dtype, seed, threads, steps=4):
    default = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(7)
        p = torch.randn(1 << 18, generator=generator).to(dtype).requires_grad_()
        opt = mt.Adam([p], lr=1e-3, rounding="stochastic", rounding_seed=seed)
        for _ in range(steps):
            p.grad = torch.randn(1 << 18, generator=generator).to(dtype)
            opt.step()
        return p.detach()
    finally:
        torch.set_num_threads(default)


@pytest.mark.parametrize("dtype", NARROW)
def test_stochastic_rounding_is_reproducible_from_its_seed_on_any_threads(dtype):
    first = stochastic_run(dtype, 11, 1)
    assert same_bits([first], [stochastic_run(dtype, 11, 1)])
    assert same_bits([first], [stochastic_run(dtype, 11, 2)])
    other = stochastic_run(dtype, 12, 2)
    assert not torch.equal(first.view(torch.int16), other.view(torch.int16))


def test_stochastic_rounding_keeps_small_updates_in_expectation():
    # SGD's update lr · g = 2^-10 of bf16 parameters at 1.5, whose unit in the last place is
    # 2^-7: nearest rounding loses every one; stochastic rounding moves an eighth of them by a
    # unit, and so their mean by the update.
    n = 1 << 16
    for rounding, moved in (("nearest", 0.0), ("stochastic", 0.125)):
        p = torch.full((n,), 1.5, dtype=torch.bfloat16, requires_grad=True)
        p.grad = torch.ones(n, dtype=torch.bfloat16)
        mt.SGD([p], lr=2.0 ** -10, rounding=rounding, rounding_seed=3).step()
        fraction = (p.detach() != 1.5).float().mean().item()
        assert abs(fraction - moved) < 0.01, (rounding, fraction)
        assert abs(p.detach().float().mean().item() - (1.5 - 2.0 ** -10 * (moved > 0))) < 2e-4


@pytest.mark.parametrize("dtype", NARROW)
@pytest.mark.parametrize("storage", [dict(), dict(rounding="stochastic", rounding_seed=5)])
def test_state_dict_round_trip_with_master_weights(dtype, storage):
    net = model(dtype)
    opt = mt.MAdam(net.parameters(), lr_out=0.01, **storage)
    for step in range(5):
        backward(net, step)
        opt.step()
    buffer = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buffer)
    for step in range(5, 10):
        backward(net, step)
        opt.step()
    buffer.seek(0)
    saved = torch.load(buffer)
    assert ("master_weights" in saved["opt"]["state"][0]) == (not storage)
    resumed_net = model(dtype, seed=9)
    resumed_net.load_state_dict(saved["model"])
    resumed = mt.MAdam(resumed_net.parameters(), lr_out=0.01, **storage)
    resumed.load_state_dict(saved["opt"])
    for step in range(5, 10):
        backward(resumed_net, step)
        resumed.step()
    assert same_bits([p.detach() for p in net.parameters()], [p.detach() for p in resumed_net.parameters()])
    mine, theirs = opt.state_dict()["state"], resumed.state_dict()["state"]
    for k in mine:
        assert mine[k].keys() == theirs[k].keys()
        assert all(same_bits([mine[k][n]], [theirs[k][n]]) for n in mine[k] if n != "step")


def test_torch_optim_adam_on_bfloat16_against_master_weights():
    # torch.optim.Adam on bf16 parameters keeps exp_avg and exp_avg_sq in bf16 and rounds after
    # every op. Adam's update, at most about lr = 1e-3, is at most half a unit in the last place
    # of a weight in [0.25, 0.5) (2^-9), so rounding the weight to nearest loses much of it.
    # multopt's master weights keep it: their bf16 parameters end near the float32 run (within
    # 0.28% of the largest weight here), torch.optim's do not (19%).
    def run(make, dtype):
        net = model(torch.bfloat16).to(dtype)
        opt = make(net.parameters())
        for step in range(100):
            backward(net, step)
            opt.step()
        return [p.detach().float() for p in net.parameters()], opt

    reference, _ = run(lambda p: torch.optim.Adam(p, lr=1e-3), torch.float32)
    master, _ = run(lambda p: mt.Adam(p, lr=1e-3), torch.bfloat16)
    theirs, torch_opt = run(lambda p: torch.optim.Adam(p, lr=1e-3), torch.bfloat16)
    assert torch_opt.state_dict()["state"][0]["exp_avg"].dtype == torch.bfloat16

    def distance(params):
        return max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(params, reference))

    print("distance to float32: multopt master {:.2e}, torch.optim.Adam bf16 {:.2e}".format(
        distance(master), distance(theirs)))
    assert distance(master) < 0.01 < distance(theirs)


def test_torch_optim_bfloat16_state_loads_widened():
    # torch.optim.Adam's bf16 moments become multopt's float32 ones exactly; the master weights
    # start from the parameters at the next step.
    net = model(torch.bfloat16)
    torch_adam = torch.optim.Adam(net.parameters(), lr=1e-3)
    for step in range(3):
        backward(net, step)
        torch_adam.step()
    saved = torch_adam.state_dict()
    opt = mt.Adam(net.parameters(), lr=1e-3)
    opt.load_state_dict(saved)
    state = opt.state_dict()["state"]
    for k, theirs in saved["state"].items():
        assert state[k]["exp_avg_sq"].dtype == torch.float32
        assert torch.equal(state[k]["exp_avg_sq"], theirs["exp_avg_sq"].float()) and "master_weights" not in state[k]
    start = [p.detach().float() for p in net.parameters()]
    backward(net, 3)
    opt.step()
    assert all((m - p).abs().max() < 2e-3 for m, p in zip(master_weights(opt), start))


def test_storage_settings_are_checked():
    p = torch.zeros(3, dtype=torch.bfloat16, requires_grad=True)
    with pytest.raises(ValueError, match="rounding = 'up' is unknown; known: master, nearest, stochastic"):
        mt.Adam([p], rounding="up")
    with pytest.raises(ValueError, match=r"rounding_seed = '-1' is not a whole number in \[0, 2\^64\)"):
        mt.MAdam([p], rounding="stochastic", rounding_seed=-1)
    with pytest.raises(ValueError, match="rounding = 'nearest' is for bfloat16 and float16 parameters"):
        mt.Adam([torch.zeros(3, requires_grad=True)], rounding="nearest")
    # One 16-bit group among float32 ones is enough; a float32 group added later too.
    opt = mt.Adam([{"params": [torch.zeros(3, requires_grad=True)]}, {"params": [p]}], rounding="nearest")
    opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)]})
    p.grad = torch.ones(3, dtype=torch.bfloat16)
    bf16 = mt.Adam([p])
    bf16.step()
    saved = bf16.state_dict()
    # Master weights are for 16-bit parameters: loading them into a float32 one is refused, and
    # changes neither the optimizer's state nor its groups.
    wide = torch.zeros(3, requires_grad=True)
    wide.grad = torch.ones(3)
    opt = mt.Adam([wide], lr=0.5)
    opt.step()
    before = opt.state_dict()
    saved["param_groups"][0]["lr"] = 0.25
    with pytest.raises(ValueError, match="master weights in its state, which are for bfloat16 and float16 parameters, not Float"):
        opt.load_state_dict(saved)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"] and opt.param_groups[0]["lr"] == 0.5
    assert all(torch.equal(after["state"][0][n], before["state"][0][n]) for n in before["state"][0])
