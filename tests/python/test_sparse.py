"""Sparse gradients (nn.Embedding(sparse=True)): multopt.torch steps the rows a gradient touches,
exactly as torch.optim's SGD, Adagrad and SparseAdam step them, and the M and H rules on those
rows as on a dense table of them alone (docs/pytorch.md, "Sparse rows")."""

import pytest
import torch

import multopt.torch as mt

ROWS, WIDTH = 40, 6


class Model(torch.nn.Module):
    """An embedding bag with a dense layer after it: sparse and dense parameters in one model."""

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.table = torch.nn.Embedding(ROWS, WIDTH, sparse=True).double()
        self.out = torch.nn.Linear(WIDTH, 1).double()

    def forward(self, rows):
        return self.out(self.table(rows).sum(dim=1)).square().mean()


def batches(steps, seed=7):
    """Batches of 5 bags of 4 rows each, drawn with repeats (several in each batch)."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, ROWS // 2, (5, 4), generator=generator) for _ in range(steps)]


def train(make, steps=20, parameters=lambda model: model.parameters()):
    model = Model(seed=3)
    opt = make(parameters(model))
    for rows in batches(steps):
        opt.zero_grad()
        model(rows).backward()
        opt.step()
    return model, opt


CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.002, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, initial_accumulator_value=0.3, eps=1e-6)),
    ("Adagrad", dict(lr=0.01, maximize=True)),
    ("SparseAdam", dict(lr=0.01)),
    ("SparseAdam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6)),
    ("SparseAdam", dict(lr=0.002, maximize=True)),
]


@pytest.mark.parametrize("name,settings", CASES, ids=["{}-{}".format(n, i) for i, (n, _) in enumerate(CASES)])
def test_sparse_steps_match_torch(name, settings):
    if name == "SparseAdam":  # torch's SparseAdam takes sparse gradients only: the table alone
        parameters = lambda model: [model.table.weight]
    else:
        parameters = lambda model: model.parameters()
    ours, opt = train(lambda ps: getattr(mt, name)(ps, **settings), parameters=parameters)
    theirs, reference = train(lambda ps: getattr(torch.optim, name)(ps, **settings), parameters=parameters)
    assert ours.table.weight.grad.is_sparse
    for mine, torch_param in zip(ours.parameters(), theirs.parameters()):
        assert torch.isfinite(mine).all()
        torch.testing.assert_close(mine, torch_param, rtol=1e-10, atol=1e-12)
    for mine, torch_param in zip(parameters(ours), parameters(theirs)):
        held, expected = opt.state[mine], reference.state[torch_param]
        for key, value in expected.items():
            if value is None:  # torch.optim.SGD's momentum_buffer without momentum
                assert held.get(key) is None
                continue
            if not torch.is_tensor(value):  # torch.optim.SparseAdam's step count
                assert float(held[key]) == value
                continue
            value = value.to_dense() if value.is_sparse else value
            torch.testing.assert_close(held[key].to(value.dtype), value, rtol=1e-10, atol=1e-12, msg=key)


@pytest.mark.parametrize("name,settings", [("SGD", dict(lr=0.1, weight_decay=0.1)),
                                           ("Adagrad", dict(lr=0.1, weight_decay=0.1)),
                                           ("MSGD", dict(lr_out=0.1, weight_decay=0.1)),
                                           ("HAdagrad", dict(lr_out=0.1, lr=0.1, weight_decay=0.1))])
def test_weight_decay_with_sparse_gradients_is_refused_and_changes_nothing(name, settings):
    model = Model(seed=3)
    opt = getattr(mt, name)(model.parameters(), **settings)
    model(batches(1)[0]).backward()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="weight_decay.*sparse"):
        opt.step()
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert len(opt.state) == 0


@pytest.mark.parametrize("name", ["Adam", "MAdam", "RMSprop", "HNAdam"])
def test_bases_without_sparse_steps_refuse_sparse_gradients(name):
    model = Model(seed=3)
    opt = getattr(mt, name)(model.parameters())
    model(batches(1)[0]).backward()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="has a sparse gradient, which .* does not step"):
        opt.step()
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_sparse_adam_refuses_dense_gradients_as_torch_does():
    model = Model(seed=3)
    opt = mt.SparseAdam(model.parameters())
    model(batches(1)[0]).backward()
    with pytest.raises(ValueError, match="dense gradient.*Adam"):
        opt.step()
    assert len(opt.state) == 0


RULE_CASES = [
    ("MSGD", dict(lr_out=0.05)),
    ("HSGD", dict(lr_out=0.05, lr=0.05, g=0.5)),
    ("MAdagrad", dict(lr_out=0.05)),
    ("HAdagrad", dict(lr_out=0.05, lr=0.05, g=0.5)),
    ("MSparseAdam", dict(lr_out=0.01)),
    ("HSparseAdam", dict(lr_out=0.01, lr=0.01, g=0.3)),
]


@pytest.mark.parametrize("name,settings", RULE_CASES, ids=[n for n, _ in RULE_CASES])
def test_rules_step_the_touched_rows_as_a_dense_table_of_them(name, settings):
    """A sparse step of a table is, row for row, the dense step of a table made of the touched
    rows alone (with their state); the other rows and their state stay as they were."""
    table = torch.nn.Parameter(torch.rand(ROWS, WIDTH, dtype=torch.float64) + 0.5)
    opt = getattr(mt, name)([table], **settings)
    generator = torch.Generator().manual_seed(5)
    for step in range(6):
        rows = torch.randint(0, ROWS // 2, (12,), generator=generator)
        values = torch.randn(12, WIDTH, dtype=torch.float64, generator=generator)
        table.grad = torch.sparse_coo_tensor(rows.unsqueeze(0), values, (ROWS, WIDTH))
        touched = table.grad.coalesce().indices()[0]
        untouched = torch.ones(ROWS, dtype=torch.bool)
        untouched[touched] = False
        # The same step on the touched rows alone, from copies of their values and state.
        alone = torch.nn.Parameter(table.detach()[touched].clone())
        alone.grad = table.grad.coalesce().values().clone()
        dense = getattr(mt, name)([alone], **settings)
        if opt.state:
            dense.state[alone] = {key: value.clone() if value.dim() == 0 else value[touched].clone()
                                  for key, value in opt.state[table].items()}
        before = table.detach().clone()
        state_before = {key: value.clone() for key, value in opt.state[table].items()} if opt.state else {}
        opt.step()
        dense_step(dense)
        assert torch.equal(table.detach()[touched], alone.detach()), step
        assert torch.equal(table.detach()[untouched], before[untouched]), step
        for key, value in opt.state[table].items():
            if value.dim() == 0:
                assert torch.equal(value, dense.state[alone][key]), key
                continue
            assert torch.equal(value[touched], dense.state[alone][key]), key
            if key in state_before:
                assert torch.equal(value[untouched], state_before[key][untouched]), key


def dense_step(opt):
    """SparseAdam's classes refuse dense gradients; the rows alone step as a sparse gradient
    that touches every row, which is the same step."""
    for group in opt.param_groups:
        for p in group["params"]:
            if isinstance(opt, (mt.SparseAdam, mt.MSparseAdam, mt.HSparseAdam)):
                every = torch.arange(p.shape[0]).unsqueeze(0)
                p.grad = torch.sparse_coo_tensor(every, p.grad, p.shape)
    opt.step()


def test_sparse_steps_are_bit_identical_at_any_thread_count():
    results = []
    for threads in (1, 2):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            table = torch.nn.Parameter(torch.rand(1 << 14, 64, generator=torch.Generator().manual_seed(0)) + 0.5)
            opt = mt.HSparseAdam([table], lr_out=0.01, lr=0.01, g=0.5)
            generator = torch.Generator().manual_seed(1)
            for _ in range(3):
                rows = torch.randint(0, 1 << 14, (1 << 12,), generator=generator)
                table.grad = torch.sparse_coo_tensor(rows.unsqueeze(0), torch.randn(1 << 12, 64, generator=generator),
                                                     table.shape)
                opt.step()
            results.append((table.detach().clone(), opt.state[table]["exp_avg_sq"].clone()))
        finally:
            torch.set_num_threads(previous)
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def rosenbrock(xy):
    return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2


def descend_coordinates(make, sparse, steps=2000, schedule=None):
    """Coordinate descent on the Rosenbrock function, x at odd steps and y at even ones, each
    coordinate's gradient given as two uncoalesced entries of one index (3/4 and 1/4 of it), or
    the same made dense; float32, as a model's parameters are. Returns the parameter."""
    xy = torch.nn.Parameter(torch.tensor([1.5, 1.5]))
    opt = make([xy])
    scheduler = schedule(opt) if schedule else None
    for step in range(steps):
        coordinate = 1 - step % 2
        opt.zero_grad()
        rosenbrock(xy).backward()
        gradient = xy.grad[coordinate].item()
        entries = torch.sparse_coo_tensor([[coordinate, coordinate]], [0.75 * gradient, 0.25 * gradient], (2,))
        xy.grad = entries if sparse else entries.to_dense()
        opt.step()
        if scheduler:
            scheduler.step()
    return xy.detach()


@pytest.mark.parametrize("name,settings,schedule", [
    ("SGD", dict(lr=4.8e-3), None),
    ("SGD", dict(lr=4.8e-3), lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=300, gamma=0.9)),
    ("Adagrad", dict(lr=0.1), None),
    ("Adagrad", dict(lr=0.1), lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9999)),
    ("SparseAdam", dict(lr=0.04), None),
], ids=["SGD", "SGD-StepLR", "Adagrad", "Adagrad-ExponentialLR", "SparseAdam"])
def test_uncoalesced_sparse_gradients_descend_as_dense_ones_and_as_torch(name, settings, schedule):
    ours = descend_coordinates(lambda ps: getattr(mt, name)(ps, **settings), True, schedule=schedule)
    theirs = descend_coordinates(lambda ps: getattr(torch.optim, name)(ps, **settings), True, schedule=schedule)
    start_distance = torch.tensor([1.5, 1.5]).dist(torch.ones(2))
    assert ours.dist(torch.ones(2)) < start_distance
    # float32 over 2000 steps: torch sums and multiplies in another order (SGD drifts 2e-6).
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-5)
    if name != "SparseAdam":  # which refuses dense gradients, as torch's does
        dense = descend_coordinates(lambda ps: getattr(mt, name)(ps, **settings), False, schedule=schedule)
        assert torch.equal(ours, dense)
