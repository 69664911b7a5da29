"""16-bit optimizer state (state_dtype, docs/mixed-precision.md): each step is the float32 step of
the widened state, its arrays stored rounded to nearest even, on the fused loop and on torch's
multi-tensor ops alike; the master weights and the moving average stay float32."""

import copy
import io
import pickle

import pytest
import torch

import multopt.torch as mt
from test_foreach import CASES, params, set_grads

STATE_DTYPES = [torch.bfloat16, torch.float16]
BACKENDS = ["fused", "foreach"]
SCALARS = {"step", "mu_product"}  # the state entries that are no arrays


def arrays_of(state, dtype):
    """The entries of one parameter's state stored in `dtype` (its 16-bit arrays)."""
    return {name: value for name, value in state.items() if torch.is_tensor(value) and value.dtype == dtype}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("state_dtype", STATE_DTYPES)
@pytest.mark.parametrize("name,settings", CASES, ids=[name + str(k) for k, (name, _) in enumerate(CASES)])
def test_each_step_is_the_float32_step_of_the_widened_state_rounded(name, settings, state_dtype, backend):
    cls = getattr(mt, name)
    mine, theirs = params(torch.float32), params(torch.float32)
    narrow = cls(mine, state_dtype=state_dtype, backend=backend, **settings)
    wide = cls(theirs, backend=backend, **settings)
    set_grads(mine, 0)
    narrow.step()
    for step in range(1, 5):
        with torch.no_grad():
            for p, q in zip(mine, theirs):
                q.copy_(p)
                wide.state[q] = {key: value.float() if value.dtype == state_dtype else value.clone()
                                 for key, value in narrow.state[p].items()}
        set_grads(mine, step)
        set_grads(theirs, step)
        narrow.step()
        wide.step()
        for p, q in zip(mine, theirs):
            assert torch.equal(p, q), step
            stored = arrays_of(narrow.state[p], state_dtype)
            assert set(stored) == set(wide.state[q]) - SCALARS
            for key, value in stored.items():
                assert torch.equal(value, wide.state[q][key].to(state_dtype)), (step, key)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16bit_parameters_keep_float32_master_weights_and_average(dtype, backend):
    ps = params(dtype)
    opt = mt.MAdam(ps, lr_in=0.7, lr_out=0.02, state_dtype=torch.bfloat16, ema_decay=0.9, backend=backend)
    for step in range(3):
        set_grads(ps, step)
        opt.step()
    for p in ps:
        state = opt.state[p]
        assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == torch.bfloat16
        assert state["master_weights"].dtype == state["ema"].dtype == torch.float32
        assert torch.equal(p.detach(), state["master_weights"].to(dtype))


def test_the_state_takes_half_the_bytes():
    ps = params(torch.float32)
    for state_dtype, per_element in [(torch.float32, 8), (torch.bfloat16, 4), (torch.float16, 4)]:
        opt = mt.Adam(ps, lr=0.01, state_dtype=state_dtype)
        set_grads(ps, 0)
        opt.step()
        stored = sum(value.numel() * value.element_size() for p in ps for key, value in opt.state[p].items()
                     if key not in SCALARS)
        assert stored == per_element * sum(p.numel() for p in ps)


def test_state_dicts_deepcopy_and_pickle_keep_the_state_dtype():
    ps = params(torch.float32)
    opt = mt.HAdam(ps, lr_in=0.7, lr_out=0.02, lr=0.01, g=0.6, state_dtype=torch.bfloat16)
    set_grads(ps, 0)
    opt.step()
    saved = io.BytesIO()
    torch.save(opt.state_dict(), saved)
    for other in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert other._state_dtype() == torch.bfloat16
    # Into an optimizer of 16-bit state: as saved. Into one of float32 state: widened, exactly.
    twin = mt.HAdam(ps, lr_in=0.7, lr_out=0.02, lr=0.01, g=0.6, state_dtype=torch.bfloat16)
    saved.seek(0)
    twin.load_state_dict(torch.load(saved))
    plain = mt.HAdam(ps, lr_in=0.7, lr_out=0.02, lr=0.01, g=0.6)
    plain.load_state_dict(opt.state_dict())
    for p in ps:
        for key, value in arrays_of(opt.state[p], torch.bfloat16).items():
            assert torch.equal(twin.state[p][key], value)
            assert plain.state[p][key].dtype == torch.float32 and torch.equal(plain.state[p][key], value.float())
    # float32 state into an optimizer of 16-bit state: rounded to nearest even as it loads.
    narrowed = mt.HAdam(ps, lr_in=0.7, lr_out=0.02, lr=0.01, g=0.6, state_dtype=torch.float16)
    narrowed.load_state_dict(plain.state_dict())
    for p in ps:
        assert torch.equal(narrowed.state[p]["exp_avg"], plain.state[p]["exp_avg"].half())


@pytest.mark.parametrize("backend", BACKENDS)
def test_16bit_state_is_refused_for_float64_and_complex_parameters_and_nothing_changes(backend):
    with pytest.raises(ValueError, match=r"state_dtype = torch.float64 is not one of"):
        mt.Adam(params(torch.float32), state_dtype=torch.float64)
    for dtype in (torch.float64, torch.complex64):
        p = torch.ones(3, dtype=dtype, requires_grad=True)
        p.grad = torch.ones(3, dtype=dtype)
        opt = mt.Adam([p], lr=0.1, state_dtype=torch.bfloat16, backend=backend)
        with pytest.raises(ValueError, match=r"parameter 0 of group 0 is .*(Double|float64|ComplexFloat|complex64)"
                                             r".*for real parameters computed in float"):
            opt.step()
        assert torch.equal(p.detach(), torch.ones(3, dtype=dtype))
        assert not opt.state[p]
