"""multopt.torch's state lives in torch.optim's opt.state: what a torch.optim user does with it
(deepcopy, pickle, torch.save, load_state_dict, add_param_group, p.data replaced, threads), and
the tensors torch.optim steps (strided, complex, with torch's negative bit)."""

import copy
import io
import math
import pickle
import threading

import pytest
import torch

import multopt.torch as mt


def params(seed=0, dtype=torch.float64, shapes=((4, 3), (5,))):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=generator, dtype=dtype).requires_grad_() for shape in shapes]


def set_grads(ps, step):
    generator = torch.Generator().manual_seed(100 + step)
    for p in ps:
        p.grad = torch.randn(p.shape, generator=generator, dtype=p.dtype)


def run(ps, opt, steps, first=0):
    for k in range(first, first + steps):
        set_grads(ps, k)
        opt.step()
    return [p.detach().clone() for p in ps]


def snapshot(opt):
    """Everything a refused call must leave as it was: the groups' settings and every state."""
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    state = {id(p): {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()} for p, s in opt.state.items()}
    return groups, [len(g["params"]) for g in opt.param_groups], state


def assert_unchanged(opt, before):
    groups, lengths, state = snapshot(opt)
    assert (groups, lengths) == before[:2]
    assert state.keys() == before[2].keys()
    for key, entries in state.items():
        assert entries.keys() == before[2][key].keys()
        for name, value in entries.items():
            assert torch.equal(value, before[2][key][name]) if torch.is_tensor(value) else value == before[2][key][name]


def test_state_is_in_opt_state_by_torch_optim_names_between_steps():
    ps = params()
    opt = mt.Adam(ps, lr=0.01, amsgrad=True)
    assert len(opt.state) == 0
    run(ps, opt, 3)
    for p in ps:
        state = opt.state[p]
        assert set(state) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
        assert torch.is_tensor(state["step"]) and state["step"].item() == 3
        assert state["exp_avg"].shape == p.shape and state["exp_avg"].dtype == p.dtype
    ref_ps = params()
    ref = torch.optim.Adam(ref_ps, lr=0.01, amsgrad=True)
    run(ref_ps, ref, 3)
    for p, q in zip(ps, ref_ps):
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert torch.allclose(opt.state[p][name], ref.state[q][name], rtol=1e-13, atol=0)
    nadam = mt.NAdam(ps, lr=0.01)
    run(ps, nadam, 2)
    assert nadam.state[ps[0]]["mu_product"].dtype == torch.float64


def test_deepcopy_pickle_and_torch_save_carry_the_state():
    ps = params()
    opt = mt.MAdam(ps, lr_out=0.01)
    run(ps, opt, 4)
    for copied in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert copied.state_dict()["state"][0]["step"].item() == 4
    buffer = io.BytesIO()
    torch.save({"params": ps, "opt": opt}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)
    copied_ps, copied_opt = loaded["params"], loaded["opt"]
    expected = run(ps, opt, 3, first=4)
    assert all(torch.equal(a, b) for a, b in zip(run(copied_ps, copied_opt, 3, first=4), expected))
    assert copied_opt.state[copied_ps[0]]["step"].item() == 7


def test_state_dict_round_trip_with_equal_but_not_identical_parameters():
    ps = params()
    opt = mt.HAdam(ps, lr_out=0.01, lr=0.01, g=0.5)
    run(ps, opt, 3)
    saved = copy.deepcopy(opt.state_dict())
    twins = [p.detach().clone().requires_grad_() for p in ps]
    other = mt.HAdam(twins, lr_out=0.5, lr=0.5, g=0.1)
    other.load_state_dict(saved)
    assert other.param_groups[0]["lr_out"] == 0.01
    assert all(torch.equal(a, b) for a, b in zip(run(twins, other, 4, first=3), run(ps, opt, 4, first=3)))


def test_state_dicts_of_old_torch_load_integer_step_and_groups_without_new_keys():
    ref_ps = params()
    ref = torch.optim.Adam(ref_ps, lr=0.01)
    run(ref_ps, ref, 3)
    ps = [p.detach().clone().requires_grad_() for p in ref_ps]
    saved = copy.deepcopy(ref.state_dict())
    for state in saved["state"].values():
        state["step"] = 3  # an integer, as torch before 1.12 saved it
    for group in saved["param_groups"]:
        del group["maximize"], group["foreach"]
    opt = mt.Adam(ps, lr=0.01)
    opt.load_state_dict(saved)
    expected = run(ref_ps, ref, 3, first=3)
    mine = run(ps, opt, 3, first=3)
    assert all(torch.allclose(a, b, rtol=1e-12, atol=0) for a, b in zip(mine, expected))
    assert torch.is_tensor(opt.state[ps[0]]["step"]) and opt.state[ps[0]]["step"].item() == 6


BAD_LOADED_STATE = [("Adam", 1, "step", bad, "parameter 1 of group 0 has step")
                    for bad in (float("nan"), float("inf"), None, "three", 2.0 ** 63 - 1, -1, 2.5)] + [
                   ("NAdam", 0, "mu_product", bad, "parameter 0 of group 0 (has mu_product|has a state 'mu_product')")
                    for bad in (float("nan"), None, "x", torch.ones(3))]


@pytest.mark.parametrize("name,index,entry,bad,message", BAD_LOADED_STATE)
def test_load_state_dict_refuses_a_bad_step_or_mu_product_before_anything_changes(name, index, entry, bad, message):
    ps = params()
    opt = getattr(mt, name)(ps, lr=0.01)
    run(ps, opt, 2)
    saved = copy.deepcopy(opt.state_dict())
    saved["param_groups"][0]["lr"] = 0.5
    saved["state"][index][entry] = bad
    before = snapshot(opt)
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(saved)
    assert_unchanged(opt, before)


def test_a_step_refused_for_one_parameter_changes_no_other():
    ps = params()
    opt = mt.Adam([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.1}], lr=0.01)
    run(ps, opt, 2)
    opt.state[ps[1]]["step"].fill_(float(mt._multopt.max_step_count))
    before = [p.detach().clone() for p in ps]
    state = snapshot(opt)
    set_grads(ps, 9)
    with pytest.raises(ValueError, match="parameter 0 of group 1 has step"):
        opt.step()
    assert all(torch.equal(p.detach(), b) for p, b in zip(ps, before))
    assert_unchanged(opt, state)


@pytest.mark.parametrize("group", [{"momentum": 1.5}, {"lr": float("inf")}, {"dampening": float("nan")},
                                   {"nesterov": True}])
def test_add_param_group_refuses_before_it_adds(group):
    ps = params()
    opt = mt.SGD(ps[:1], lr=0.1, momentum=0.5)
    run(ps[:1], opt, 1)
    before = snapshot(opt)
    with pytest.raises(ValueError):
        opt.add_param_group({"params": ps[1:], **group})
    assert_unchanged(opt, before)
    run(ps[:1], opt, 2, first=1)  # later steps are not affected
    assert opt.state[ps[0]]["step"].item() == 3


def test_data_replaced_by_another_size_is_refused_by_name_and_never_read_past_its_end():
    for size in (2, 40):
        ps = params()
        opt = mt.Adam(ps, lr=0.01)
        run(ps, opt, 2)
        ps[1].data = torch.zeros(size, dtype=torch.float64)
        state = snapshot(opt)
        set_grads(ps, 5)
        with pytest.raises(ValueError, match="parameter 1 of group 0 has {} elements but its state 'exp_avg' has 5"
                           .format(size)):
            opt.step()
        assert not ps[1].detach().any()
        assert_unchanged(opt, state)
        assert opt.state_dict()["state"][1]["exp_avg"].numel() == 5
        del opt.state[ps[1]]  # what a user does to restart it: its state is made anew
        opt.step()
        assert opt.state[ps[1]]["step"].item() == 1 and opt.state[ps[0]]["step"].item() == 3
        assert torch.isfinite(ps[1].detach()).all()


def test_the_state_follows_the_parameters_dtype():
    net = torch.nn.Linear(3, 2)
    opt = mt.Adam(net.parameters(), lr=0.01)
    x = torch.randn(4, 3)
    for _ in range(3):
        opt.zero_grad()
        net(x).sum().backward()
        opt.step()
    moments = {name: opt.state[p]["exp_avg"].clone() for name, p in net.named_parameters()}
    net.double()
    opt.zero_grad()
    net(x.double()).sum().backward()
    opt.step()
    for name, p in net.named_parameters():
        state = opt.state[p]
        assert state["exp_avg"].dtype == torch.float64 and state["step"].item() == 4
        expected = 0.9 * moments[name].double() + 0.1 * p.grad
        assert torch.allclose(state["exp_avg"], expected, rtol=1e-12, atol=0)


def test_a_new_parameter_starts_with_fresh_state_even_after_one_was_removed():
    ps = params()
    opt = mt.Adam(ps, lr=0.01)
    run(ps, opt, 5)
    opt.param_groups[0]["params"] = ps[:1]
    del opt.state[ps[1]]
    del ps[1]
    new = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt.add_param_group({"params": [new]})
    run(ps + [new], opt, 1, first=5)
    assert opt.state[new]["step"].item() == 1
    assert opt.state[ps[0]]["step"].item() == 6


def test_gradient_with_torchs_negative_bit_steps_by_its_values():
    z = torch.randn(6, dtype=torch.complex128, generator=torch.Generator().manual_seed(3))
    grad = z.conj().imag
    assert grad.is_neg()
    p, q = torch.zeros(6, dtype=torch.float64, requires_grad=True), torch.zeros(6, dtype=torch.float64, requires_grad=True)
    p.grad, q.grad = grad, grad.resolve_neg()
    mt.SGD([p], lr=0.1).step()
    torch.optim.SGD([q], lr=0.1).step()
    assert torch.equal(p.detach(), q.detach())


@pytest.mark.parametrize("name,settings", [("Adam", dict(lr=0.01)), ("SGD", dict(lr=0.1, momentum=0.9)),
                                           ("RMSprop", dict(lr=0.01, centered=True)), ("Adagrad", dict(lr=0.1))])
def test_strided_and_complex_parameters_step_as_torch_optim(name, settings):
    base = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    strided = base.clone().t().requires_grad_()  # not contiguous
    complex_ = torch.randn(5, dtype=torch.complex128, generator=torch.Generator().manual_seed(2)).requires_grad_()
    mine = [strided, complex_]
    theirs = [p.detach().clone().requires_grad_() for p in mine]
    theirs[0] = base.clone().t().requires_grad_()
    opt, ref = getattr(mt, name)(mine, **settings), getattr(torch.optim, name)(theirs, **settings)
    for step in range(4):
        generator = torch.Generator().manual_seed(step)
        for a, b in zip(mine, theirs):
            grad = torch.randn(b.shape[::-1], generator=generator, dtype=b.dtype)
            a.grad, b.grad = grad.t() if grad.dim() == 2 else grad, grad.t() if grad.dim() == 2 else grad
        opt.step()
        ref.step()
    for a, b in zip(mine, theirs):
        assert torch.allclose(a.detach(), b.detach(), rtol=1e-12, atol=1e-15)
    assert not mine[0].is_contiguous()


def test_the_same_tensor_twice_shares_one_state_and_steps_twice_as_in_torch_optim():
    p = torch.ones(3, dtype=torch.float64, requires_grad=True)
    q = p.detach().clone().requires_grad_()
    with pytest.warns(UserWarning, match="duplicate parameters"):
        opt = mt.Adam([p, p], lr=0.01)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        ref = torch.optim.Adam([q, q], lr=0.01)
    for k in range(3):
        p.grad = torch.full((3,), 1.0 + k, dtype=torch.float64)
        q.grad = p.grad.clone()
        opt.step()
        ref.step()
    assert len(opt.state) == 1 and opt.state[p]["step"].item() == 6 == ref.state[q]["step"].item()
    assert torch.allclose(p.detach(), q.detach(), rtol=1e-14, atol=0)


def test_two_python_threads_stepping_one_optimizer_take_turns():
    ps, qs = params(shapes=((300, 200), (200,))), params(shapes=((300, 200), (200,)))
    opt, ref = mt.MAdam(ps, lr_out=1e-3), mt.MAdam(qs, lr_out=1e-3)
    set_grads(ps, 0)
    set_grads(qs, 0)
    errors = []

    def work():
        try:
            for _ in range(40):
                opt.step()
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(80):
        ref.step()
    assert not errors
    assert opt.state[ps[0]]["step"].item() == 80
    assert all(torch.equal(p, q) for p, q in zip(ps, qs))
    # The lock that orders the steps is the optimizer's own, made anew by a copy.
    twin = copy.deepcopy(opt)
    twin.step()
    assert twin._stepping is not opt._stepping and twin.state[twin.param_groups[0]["params"][0]]["step"].item() == 81


def test_torch_thread_counts_above_multopts_limit_step():
    ps = params()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1025)
        run(ps, mt.Adam(ps, lr=0.01), 1)
    finally:
        torch.set_num_threads(threads)


def test_keyword_arguments_of_torch_2_are_taken():
    ps = params()
    mt.SGD(ps, lr=0.1, differentiable=False, fused=True)
    mt.RMSprop(ps, capturable=False, differentiable=False)
    mt.NAdam(ps, decoupled_weight_decay=True, weight_decay=0.1)
    with pytest.raises(ValueError, match="differentiable=True is not supported"):
        mt.SGD(ps, lr=0.1, differentiable=True)


def test_a_schedulers_bad_lr_on_an_m_class_is_named_lr():
    ps = params()
    opt = mt.MAdam(ps, lr_out=0.01)
    opt.param_groups[0]["lr"] = -1.0
    set_grads(ps, 0)
    with pytest.raises(ValueError, match=r"\blr = -1\b"):
        opt.step()


def test_nadam_decoupled_weight_decay_is_torch_2s_nadamw():
    ps = params()
    theirs = [p.detach().clone().requires_grad_() for p in ps]
    opt = mt.NAdam(ps, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)
    run(ps, opt, 3)
    # NAdamW: θ ← θ·(1 − lr·λ) before NAdam's step, which mt.NAdam without decay takes here.
    plain = mt.NAdam(theirs, lr=0.01)
    for k in range(3):
        set_grads(theirs, k)
        with torch.no_grad():
            for p in theirs:
                p.mul_(1 - 0.01 * 0.1)
        plain.step()
    assert all(torch.allclose(a.detach(), b.detach(), rtol=1e-13, atol=0) for a, b in zip(ps, theirs))


def test_nadam_equals_torchs_foreach_path():
    # torch 1.13's default (for-loop) NAdam has the mu_product_next bug fixed upstream in PyTorch
    # PR 92699; its foreach path computes the right formula, which multopt follows.
    ps = params()
    theirs = [p.detach().clone().requires_grad_() for p in ps]
    opt = mt.NAdam(ps, lr=0.01, momentum_decay=0.01)
    ref = torch.optim.NAdam(theirs, lr=0.01, momentum_decay=0.01, foreach=True)
    mine, expected = run(ps, opt, 20), run(theirs, ref, 20)
    assert all(torch.allclose(a, b, rtol=1e-6, atol=0) for a, b in zip(mine, expected))
    assert not math.isnan(float(opt.state[ps[0]]["mu_product"]))


SCHEDULERS = [
    ("StepLR", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    ("MultiStepLR", lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[2, 5], gamma=0.3)),
    ("ExponentialLR", lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)),
    ("CosineAnnealingLR", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6)),
    ("CosineAnnealingWarmRestarts", lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3)),
    ("LambdaLR", lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda k: 1.0 / (1 + k))),
    ("MultiplicativeLR", lambda o: torch.optim.lr_scheduler.MultiplicativeLR(o, lambda k: 0.95)),
    ("LinearLR", lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=4)),
    ("ConstantLR", lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=0.5, total_iters=3)),
    ("PolynomialLR", lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=6, power=2.0)),
    ("OneCycleLR", lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=10)),
    ("CyclicLR", lambda o: torch.optim.lr_scheduler.CyclicLR(o, base_lr=0.01, max_lr=0.05, step_size_up=2,
                                                             cycle_momentum=False)),
    ("SequentialLR", lambda o: torch.optim.lr_scheduler.SequentialLR(
        o, [torch.optim.lr_scheduler.ConstantLR(o, factor=0.5, total_iters=2),
            torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.8)], milestones=[3])),
    ("ChainedScheduler", lambda o: torch.optim.lr_scheduler.ChainedScheduler(
        [torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9), torch.optim.lr_scheduler.StepLR(o, 2, 0.5)])),
    ("ReduceLROnPlateau", lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=0, factor=0.5)),
]


@pytest.mark.parametrize("name,make", SCHEDULERS)
@pytest.mark.parametrize("optimizer,settings", [("Adam", dict(lr=0.02)), ("SGD", dict(lr=0.02, momentum=0.9))])
def test_every_scheduler_moves_multopt_as_torch_optim(name, make, optimizer, settings):
    ps = params()
    theirs = [p.detach().clone().requires_grad_() for p in ps]
    runs = []
    for module, group in ((mt, ps), (torch.optim, theirs)):
        opt = getattr(module, optimizer)(group, **settings)
        runs.append((opt, make(opt), group))
    for k in range(10):
        for opt, scheduler, group in runs:
            set_grads(group, k)
            opt.step()
            scheduler.step(1.0) if name == "ReduceLROnPlateau" else scheduler.step()
    (mine, mine_scheduler, _), (ref, ref_scheduler, _) = runs
    assert mine.param_groups[0]["lr"] == ref.param_groups[0]["lr"]
    assert all(torch.allclose(a.detach(), b.detach(), rtol=1e-12, atol=1e-15) for a, b in zip(ps, theirs))
    assert mine_scheduler.state_dict().keys() == ref_scheduler.state_dict().keys()
