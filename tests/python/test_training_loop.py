"""What a training loop asks of the step besides stepping (docs/pytorch.md): a moving average of
the weights (ema_decay, averaged_parameters) and loss-scaled gradients (grad_scale, found_inf),
on the fused loop; test_foreach.py steps the same on torch's multi-tensor ops."""

import copy
import io
import math
import pickle

import pytest
import torch

import multopt.torch as mt

ULP = {torch.float32: 2.0 ** -23, torch.float64: 2.0 ** -52}


def model_of(dtype, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2)).to(dtype)


def train(model, opt, steps, first=0, after_step=lambda: None, scale=None):
    """Steps on batches of a fixed stream; with `scale`, the loss is multiplied by it and the
    optimizer told so (a loss scaler's grad_scale and found_inf)."""
    dtype = next(model.parameters()).dtype
    for step in range(first, first + steps):
        generator = torch.Generator().manual_seed(step)
        x = torch.randn(16, 5, generator=generator, dtype=torch.float64).to(dtype)
        opt.zero_grad()
        loss = model(x).square().mean()
        if scale is not None:
            opt.grad_scale, opt.found_inf = torch.tensor(scale), torch.zeros(())
            loss = loss * scale
        loss.backward()
        opt.step()
        after_step()


def assert_within(a, b, ulps):
    """a equals b to `ulps` units in the last place of b's largest magnitude."""
    assert a.dtype == b.dtype and a.shape == b.shape
    bound = ulps * ULP[b.dtype] * (b.abs().max().item() or 1.0)
    assert (a - b).abs().max().item() <= bound, ((a - b).abs().max().item(), bound)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ema_is_averaged_models_average_of_the_same_run(dtype):
    decay = 0.9
    model = model_of(dtype)
    opt = mt.Adam(model.parameters(), lr=0.01, ema_decay=decay)
    average = torch.optim.swa_utils.AveragedModel(model, avg_fn=lambda avg, p, n: decay * avg + (1 - decay) * p)
    train(model, opt, 30, after_step=lambda: average.update_parameters(model))
    for p, a in zip(model.parameters(), average.module.parameters()):
        assert opt.state[p]["ema"].dtype == dtype
        assert_within(opt.state[p]["ema"], a.detach(), 4)


@pytest.mark.parametrize("dtype,rel", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_ema_follows_torch_optim_adam_with_averaged_model(dtype, rel):
    decay = 0.8
    model, theirs = model_of(dtype), model_of(dtype)
    opt = mt.Adam(model.parameters(), lr=0.01, ema_decay=decay)
    their_opt = torch.optim.Adam(theirs.parameters(), lr=0.01)
    average = torch.optim.swa_utils.AveragedModel(theirs, avg_fn=lambda avg, p, n: decay * avg + (1 - decay) * p)
    train(model, opt, 30)
    train(theirs, their_opt, 30, after_step=lambda: average.update_parameters(theirs))
    for p, a in zip(model.parameters(), average.module.parameters()):
        a = a.detach()
        assert (opt.state[p]["ema"] - a).abs().max().item() <= rel * a.abs().max().item()


def test_ema_is_made_at_the_first_step_as_the_parameter_after_it():
    model = model_of(torch.float32)
    opt = mt.MAdam(model.parameters(), lr_out=0.01, ema_decay=0.99)
    train(model, opt, 1)
    for p in model.parameters():
        assert torch.equal(opt.state[p]["ema"], p.detach())
    first = [opt.state[p]["ema"].clone() for p in model.parameters()]
    before = [p.detach().clone() for p in model.parameters()]
    train(model, opt, 1, first=1)
    for p, e, b in zip(model.parameters(), first, before):
        assert torch.equal(e, b)
        expected = torch.tensor(0.99, dtype=torch.float32) * e + torch.tensor(1 - 0.99, dtype=torch.float32) * p.detach()
        assert_within(opt.state[p]["ema"], expected, 1)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_ema_of_16bit_parameters_is_float32_and_averages_the_master_weights(dtype):
    p = (torch.rand(40, generator=torch.Generator().manual_seed(1)) + 0.5).to(dtype).requires_grad_()
    opt = mt.Adam([p], lr=0.01, ema_decay=0.5)
    average = None
    for step in range(5):
        p.grad = torch.randn(40, generator=torch.Generator().manual_seed(step)).to(dtype)
        opt.step()
        master = opt.state[p]["master_weights"]
        average = master.clone() if average is None else 0.5 * average + 0.5 * master
        assert opt.state[p]["ema"].dtype == torch.float32
        assert_within(opt.state[p]["ema"], average, 2)


def test_without_ema_decay_there_is_no_average():
    model = model_of(torch.float32)
    opt = mt.Adam(model.parameters())
    train(model, opt, 2)
    assert all("ema" not in opt.state[p] for p in model.parameters())
    with pytest.raises(ValueError, match="ema_decay"):
        with opt.averaged_parameters():
            pass


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_averaged_parameters_holds_the_averages_and_gives_the_parameters_back_exactly(dtype):
    model = model_of(torch.float32).to(dtype)
    extra = torch.ones(3, dtype=dtype, requires_grad=True)  # never stepped: no average, left alone
    opt = mt.Adam([{"params": model.parameters()}, {"params": [extra]}], lr=0.05, ema_decay=0.7)
    x = torch.randn(16, 5).to(dtype)
    for _ in range(5):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    own = [p.detach().clone() for p in model.parameters()]
    with opt.averaged_parameters():
        for p in model.parameters():
            assert torch.equal(p.detach(), opt.state[p]["ema"].to(dtype))
        assert torch.equal(extra.detach(), torch.ones(3, dtype=dtype))
        averaged_loss = model(x).square().mean().item()
    assert all(torch.equal(p.detach(), o) for p, o in zip(model.parameters(), own))
    assert averaged_loss != model(x).square().mean().item()
    with pytest.raises(RuntimeError, match="inside"):
        with opt.averaged_parameters():
            raise RuntimeError("inside")
    assert all(torch.equal(p.detach(), o) for p, o in zip(model.parameters(), own))


def test_ema_decay_is_kept_by_copies_and_state_dicts_and_a_resumed_run_is_bit_identical():
    model = model_of(torch.float32)
    opt = mt.HAdam(model.parameters(), lr_out=0.01, lr=0.01, g=0.5, ema_decay=0.95)
    train(model, opt, 5)
    saved = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, saved)
    twin = copy.deepcopy((model, opt))
    pickled = pickle.loads(pickle.dumps((model, opt)))
    train(model, opt, 5, first=5)
    final = [(p.detach().clone(), opt.state[p]["ema"].clone()) for p in model.parameters()]
    saved.seek(0)
    checkpoint = torch.load(saved)
    resumed = model_of(torch.float32, seed=1)
    resumed.load_state_dict(checkpoint["model"])
    resumed_opt = mt.HAdam(resumed.parameters(), lr_out=0.01, lr=0.01, g=0.5, ema_decay=0.95)
    resumed_opt.load_state_dict(checkpoint["opt"])
    for other, other_opt in (twin, pickled, (resumed, resumed_opt)):
        assert other_opt._ema_decay == 0.95
        train(other, other_opt, 5, first=5)
        for p, (value, average) in zip(other.parameters(), final):
            assert torch.equal(p.detach(), value) and torch.equal(other_opt.state[p]["ema"], average)


def test_a_parameter_listed_twice_moves_its_average_with_each_of_its_steps():
    p = torch.ones(3, dtype=torch.float64, requires_grad=True)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        opt = mt.SGD([p, p], lr=0.1, ema_decay=0.5)
    p.grad = torch.ones(3, dtype=torch.float64)
    opt.step()  # 1 - 0.1, made there; then 1 - 0.2
    assert torch.equal(opt.state[p]["ema"], torch.full((3,), 0.5 * 0.9 + 0.5 * 0.8, dtype=torch.float64))
    assert opt.state[p]["step"].item() == 2


@pytest.mark.parametrize("value", [1.0, -0.1, math.nan])
def test_an_ema_decay_outside_0_1_is_refused_naming_it(value):
    with pytest.raises(ValueError, match=r"Invalid ema_decay value: {}$".format(value)):
        mt.Adam([torch.ones(2, requires_grad=True)], ema_decay=value)


def test_a_sparse_gradient_with_ema_decay_is_refused_naming_the_parameter():
    table = torch.ones(5, 2, dtype=torch.float64, requires_grad=True)
    opt = mt.SGD([table], lr=0.1, ema_decay=0.9)
    table.grad = torch.sparse_coo_tensor([[1, 3]], torch.ones(2, 2, dtype=torch.float64), (5, 2))
    with pytest.raises(ValueError, match="parameter 0 of group 0 has a sparse gradient, and ema_decay"):
        opt.step()
    assert len(opt.state) == 0 and torch.equal(table.detach(), torch.ones(5, 2, dtype=torch.float64))


# --- Loss scaling.

def snapshot(model, opt):
    return ([p.detach().clone() for p in model.parameters()],
            {id(p): {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()},
            copy.deepcopy([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]))


def assert_unchanged(model, opt, before):
    params, state, groups = snapshot(model, opt)
    assert all(torch.equal(a, b) for a, b in zip(params, before[0]))
    assert state.keys() == before[1].keys() and groups == before[2]
    for key, entries in state.items():
        assert entries.keys() == before[1][key].keys()
        assert all(torch.equal(value, before[1][key][name]) for name, value in entries.items())


@pytest.mark.parametrize("name,settings", [("Adam", dict(lr=0.01)), ("MAdam", dict(lr_out=0.01)),
                                           ("HSGD", dict(lr=0.01, lr_out=0.01, momentum=0.9))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_power_of_two_loss_scale_steps_bit_identically_to_no_scale(name, settings, dtype):
    cls = getattr(mt, name)
    scaled, plain = model_of(dtype), model_of(dtype)
    scaled_opt, plain_opt = cls(scaled.parameters(), ema_decay=0.9, **settings), cls(plain.parameters(), ema_decay=0.9,
                                                                                      **settings)
    train(scaled, scaled_opt, 10, scale=2.0 ** 12)
    train(plain, plain_opt, 10)
    for p, q in zip(scaled.parameters(), plain.parameters()):
        assert torch.equal(p.detach(), q.detach())
        assert all(torch.equal(value, plain_opt.state[q][key]) for key, value in scaled_opt.state[p].items())


def test_an_infinite_gradient_changes_nothing_and_sets_found_inf():
    model = model_of(torch.float32)
    opt = mt.Adam(model.parameters(), lr=0.01, ema_decay=0.9)
    opt.grad_scale, opt.found_inf = torch.tensor(2.0 ** 16), torch.zeros(())
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    model[2].bias.grad[0] = math.inf
    before = snapshot(model, opt)
    opt.step()  # at the first step: no state is made either
    assert opt.found_inf.item() == 1.0 and len(opt.state) == 0
    assert_unchanged(model, opt, before)
    del opt.grad_scale, opt.found_inf
    train(model, opt, 3)
    before = snapshot(model, opt)
    model[2].bias.grad[0] = math.nan
    opt.grad_scale = torch.tensor(8.0)  # without found_inf, the step skips just the same
    opt.step()
    assert_unchanged(model, opt, before)


def test_a_non_finite_gradient_of_one_dtype_skips_the_parameters_of_the_others():
    wide, narrow = torch.ones(4, requires_grad=True), torch.ones(4, dtype=torch.bfloat16, requires_grad=True)
    opt = mt.Adam([wide, narrow], lr=0.1)
    wide.grad, narrow.grad = torch.ones(4), torch.tensor([1.0, math.inf, 1.0, 1.0], dtype=torch.bfloat16)
    opt.found_inf = torch.zeros(())
    opt.step()
    assert opt.found_inf.item() == 1.0 and len(opt.state) == 0
    assert torch.equal(wide.detach(), torch.ones(4)) and torch.equal(narrow.detach(), torch.ones(4, dtype=torch.bfloat16))


def test_found_inf_set_by_the_scaler_skips_the_step():
    model = model_of(torch.float64)
    opt = mt.Adam(model.parameters(), lr=0.01)
    train(model, opt, 2)
    before = snapshot(model, opt)
    opt.grad_scale, opt.found_inf = torch.tensor(4.0), torch.ones(())
    opt.step()
    assert_unchanged(model, opt, before)
    assert mt.Adam._step_supports_amp_scaling


@pytest.mark.parametrize("backend", ["fused", "foreach"])
@pytest.mark.parametrize("scale", [0.0, -2.0])
def test_a_grad_scale_that_is_not_positive_is_refused_naming_it_and_changes_nothing(backend, scale):
    model = model_of(torch.float32)
    opt = mt.Adam(model.parameters(), lr=0.01, ema_decay=0.9, backend=backend)
    train(model, opt, 2)
    before = snapshot(model, opt)
    opt.grad_scale, opt.found_inf = torch.tensor(scale), torch.zeros(())
    with pytest.raises(ValueError, match="grad_scale = {:g}".format(scale)):
        opt.step()
    assert_unchanged(model, opt, before)
    assert opt.found_inf.item() == 0.0


def manual_loss_scaling(model, opt, steps, bad_step=None):
    """docs/pytorch.md's loop for torch 1.13: the scale halves at a skipped step and doubles
    after `interval` good ones."""
    scale, interval, good = 2.0 ** 16, 4, 0
    scales = []
    for step in range(steps):
        x = torch.randn(16, 5, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        (model(x).square().mean() * scale).backward()
        if step == bad_step:
            next(model.parameters()).grad[0, 0] = math.inf
        opt.grad_scale, opt.found_inf = torch.tensor(scale), torch.zeros(())
        opt.step()
        if opt.found_inf.item() > 0:
            scale, good = scale / 2, 0
        else:
            good += 1
            if good == interval:
                scale, good = scale * 2, 0
        scales.append(scale)
    return scales


def test_the_manual_loss_scaling_loop_skips_the_bad_step_and_halves_the_scale():
    model, plain = model_of(torch.float32), model_of(torch.float32)
    opt, plain_opt = mt.Adam(model.parameters(), lr=0.01), mt.Adam(plain.parameters(), lr=0.01)
    scales = manual_loss_scaling(model, opt, 6, bad_step=2)
    assert scales == [2.0 ** 16, 2.0 ** 16, 2.0 ** 15, 2.0 ** 15, 2.0 ** 15, 2.0 ** 15]
    for step in (0, 1, 3, 4, 5):  # the same batches but the skipped one, unscaled
        x = torch.randn(16, 5, generator=torch.Generator().manual_seed(step))
        plain_opt.zero_grad()
        plain(x).square().mean().backward()
        plain_opt.step()
    assert all(torch.equal(p.detach(), q.detach()) for p, q in zip(model.parameters(), plain.parameters()))
    assert opt.state[next(model.parameters())]["step"].item() == 5
