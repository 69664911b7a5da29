"""One optimizer step inside PyTorch: multopt.torch against what its users run today.

    PYTHONPATH=build/python /usr/bin/python3 benchmarks/torch_peers.py [--repetitions 5] [--steps 3]
        [--only TEXT ...] [--baseline DIR] [--device cpu|cuda]

For 1 tensor of 2^24 elements, 1000 tensors of 2^14 and 1000 tensors of 16 (where a step is
mostly the binding's and the walk over tensors), on 1 thread and on every core, it times
torch.optim.Adam (for-loop and foreach), the multiplicative and hybrid Adam of docs/math.md
written in torch ops as the paper's package does (one op per formula line), and
multopt.torch's Adam, MAdam and HAdam, over float32 parameters; and over bfloat16 parameters
torch.optim.Adam (for-loop and foreach: torch 1.13's fused Adam is CUDA's only) and
multopt.torch's Adam with master weights and with stochastic rounding. The optimizers take
turns within each repetition, in a new order each time, so that the machine's drifting
bandwidth and the heap torch's rows leave behind hit all alike; it
prints the median ns per element, the coefficient of variation over the repetitions, and the
ratios. --only times the rows whose name contains one of the TEXTs. --baseline DIR adds the rows of another
build's multopt.torch (DIR holds its package, e.g. build/python of an older commit), taking turns
with the others in the same run. On the CPU it also times multopt.torch's Adam, MAdam and HAdam
with backend="foreach" (torch's multi-tensor ops, the path of other devices) against the fused
loop. --device cuda times on the GPU, where threads do not matter (one column per size):
torch.optim.Adam (foreach and fused), the torch-ops MAdam and HAdam, the paper's package's MAdam
and HAdam where it is installed (torch_mult_optim), and multopt.torch's classes (which step CUDA
tensors with torch's multi-tensor ops), float32 and bf16 (master weights).
"""

import argparse
import importlib
import importlib.util
import math
import os
import random
import statistics
import sys
import time

import torch

import multopt.torch as mt


class TorchOpsAdam:
    """docs/math.md's Adam with the multiplicative or hybrid rule, one torch op per line."""

    def __init__(self, params, rule, lr_in=1.0, lr_out=1e-3, lr=1e-3, g=0.5, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.rule = params, rule
        self.lr_in, self.lr_out, self.lr, self.g = lr_in, lr_out, lr, g
        self.beta1, self.beta2, self.eps = betas[0], betas[1], eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        bias1 = 1 - self.beta1 ** self.t
        bias2 = 1 - self.beta2 ** self.t
        for p, m, v in zip(self.params, self.m, self.v):
            grad = p.grad
            m.mul_(self.beta1).add_(grad, alpha=1 - self.beta1)
            v.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            denom = (v.sqrt() / math.sqrt(bias2)).add_(self.eps)
            d = m / denom
            step_size = self.lr_out / bias1
            if self.rule == "multiplicative":
                p.sub_(step_size * p.abs() * torch.tanh(self.lr_in * d))
            else:
                p.sub_(self.g * step_size * p.abs() * torch.tanh(self.lr_in * d) + (1 - self.g) * self.lr / bias1 * d)


# (name, parameter dtype, optimizer of those parameters)
PEERS = [
    ("torch.optim.Adam (for-loop)", torch.float32, lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=False)),
    ("torch.optim.Adam (foreach)", torch.float32, lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True)),
    ("torch ops MAdam", torch.float32, lambda ps: TorchOpsAdam(ps, "multiplicative")),
    ("torch ops HAdam", torch.float32, lambda ps: TorchOpsAdam(ps, "hybrid")),
    ("multopt.torch.Adam", torch.float32, lambda ps: mt.Adam(ps, lr=1e-3)),
    ("multopt.torch.MAdam", torch.float32, lambda ps: mt.MAdam(ps, lr_out=1e-3)),
    ("multopt.torch.HAdam", torch.float32, lambda ps: mt.HAdam(ps, lr_out=1e-3, lr=1e-3, g=0.5)),
    ("bf16 torch.optim.Adam (for-loop)", torch.bfloat16, lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=False)),
    ("bf16 torch.optim.Adam (foreach)", torch.bfloat16, lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True)),
    ("bf16 multopt.torch.Adam (master)", torch.bfloat16, lambda ps: mt.Adam(ps, lr=1e-3)),
    ("bf16 multopt.torch.Adam (stochastic)", torch.bfloat16,
     lambda ps: mt.Adam(ps, lr=1e-3, rounding="stochastic", rounding_seed=1)),
]


# What --device cuda times: no for-loop rows (the foreach ones are torch's CUDA default), torch's
# fused Adam, no stochastic rounding (the fused CPU loop's alone).
CUDA_PEERS = [
    ("torch.optim.Adam (foreach)", torch.float32, lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True)),
    ("torch.optim.Adam (fused)", torch.float32, lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True)),
    ("torch ops MAdam", torch.float32, lambda ps: TorchOpsAdam(ps, "multiplicative")),
    ("torch ops HAdam", torch.float32, lambda ps: TorchOpsAdam(ps, "hybrid")),
    ("multopt.torch.Adam", torch.float32, lambda ps: mt.Adam(ps, lr=1e-3)),
    ("multopt.torch.MAdam", torch.float32, lambda ps: mt.MAdam(ps, lr_out=1e-3)),
    ("multopt.torch.HAdam", torch.float32, lambda ps: mt.HAdam(ps, lr_out=1e-3, lr=1e-3, g=0.5)),
    ("bf16 torch.optim.Adam (foreach)", torch.bfloat16, lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True)),
    ("bf16 multopt.torch.Adam (master)", torch.bfloat16, lambda ps: mt.Adam(ps, lr=1e-3)),
]
# multopt's classes stepping CPU tensors with torch's multi-tensor ops, beside the fused loop.
CPU_FOREACH_PEERS = [
    ("multopt.torch.Adam (foreach)", torch.float32, lambda ps: mt.Adam(ps, lr=1e-3, backend="foreach")),
    ("multopt.torch.MAdam (foreach)", torch.float32, lambda ps: mt.MAdam(ps, lr_out=1e-3, backend="foreach")),
    ("multopt.torch.HAdam (foreach)", torch.float32,
     lambda ps: mt.HAdam(ps, lr_out=1e-3, lr=1e-3, g=0.5, backend="foreach")),
]


def paper_package_peers():
    """The paper's package's MAdam and HAdam (its rule is an object, M_ABS), where it is installed."""
    try:
        package = importlib.import_module("torch_mult_optim")
    except ImportError:
        return []
    rule = package.M_ABS
    return [("paper's package MAdam", torch.float32, lambda ps: package.MAdam(ps, rule(), lr_in=1.0, lr_out=1e-3)),
            ("paper's package HAdam", torch.float32,
             lambda ps: package.HAdam(ps, rule(), lr_in=1.0, lr_out=1e-3, lr=1e-3, g=0.5))]


def load_baseline(path):
    """The multopt.torch of the package in `path`, imported as multopt_baseline.torch."""
    package = os.path.join(path, "multopt")
    spec = importlib.util.spec_from_file_location("multopt_baseline", os.path.join(package, "__init__.py"),
                                                  submodule_search_locations=[package])
    module = importlib.util.module_from_spec(spec)
    sys.modules["multopt_baseline"] = module
    spec.loader.exec_module(module)
    return importlib.import_module("multopt_baseline.torch")


def add_baseline(baseline):
    """The multopt.torch rows again, with the baseline's classes."""
    PEERS.extend([
        ("baseline Adam", torch.float32, lambda ps: baseline.Adam(ps, lr=1e-3)),
        ("baseline MAdam", torch.float32, lambda ps: baseline.MAdam(ps, lr_out=1e-3)),
        ("baseline HAdam", torch.float32, lambda ps: baseline.HAdam(ps, lr_out=1e-3, lr=1e-3, g=0.5)),
    ])
    RATIOS.extend([("multopt.torch.Adam", "baseline Adam"), ("multopt.torch.MAdam", "baseline MAdam"),
                   ("multopt.torch.HAdam", "baseline HAdam")])


RATIOS = [("torch ops MAdam", "multopt.torch.MAdam"), ("torch ops HAdam", "multopt.torch.HAdam"),
          ("torch.optim.Adam (foreach)", "multopt.torch.Adam"), ("torch.optim.Adam (for-loop)", "multopt.torch.Adam"),
          ("bf16 torch.optim.Adam (foreach)", "bf16 multopt.torch.Adam (master)"),
          ("bf16 torch.optim.Adam (for-loop)", "bf16 multopt.torch.Adam (master)"),
          ("bf16 torch.optim.Adam (foreach)", "bf16 multopt.torch.Adam (stochastic)"),
          ("multopt.torch.Adam (foreach)", "multopt.torch.Adam"), ("multopt.torch.MAdam (foreach)", "multopt.torch.MAdam"),
          ("multopt.torch.HAdam (foreach)", "multopt.torch.HAdam"),
          ("torch.optim.Adam (fused)", "multopt.torch.Adam"), ("paper's package MAdam", "multopt.torch.MAdam"),
          ("paper's package HAdam", "multopt.torch.HAdam")]


def measure(peers, device, tensors, size, threads, repetitions, steps, only):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    # Every optimizer has its own parameters (the multiplicative rule keeps them away from 0).
    runs = []
    for name, dtype, make in peers:
        if only and not any(text in name for text in only):
            continue
        params = [(torch.rand(size, device=device) + 0.5).to(dtype).requires_grad_() for _ in range(tensors)]
        for p in params:
            p.grad = (torch.randn(size, device=device) * 1e-2).to(dtype)
        opt = make(params)
        opt.step()  # allocates the state
        runs.append((name, opt, []))
    order = random.Random(0)
    wait = torch.cuda.synchronize if device == "cuda" else (lambda: None)  # a GPU's steps run after their call
    for _ in range(repetitions):
        # A new order each repetition: a row right after torch's own (which allocate and free
        # gigabytes of temporaries) runs slower than the same row elsewhere.
        for name, opt, times in order.sample(runs, len(runs)):
            wait()
            start = time.perf_counter()
            for _ in range(steps):
                opt.step()
            wait()
            times.append((time.perf_counter() - start) / steps / (tensors * size) * 1e9)
    return {name: times for name, _, times in runs}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps per timing")
    parser.add_argument("--only", nargs="+", default=[], metavar="TEXT",
                        help="time only the rows whose name contains one of these")
    parser.add_argument("--baseline", help="a folder with another build's multopt package, timed beside this one")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the tensors are")
    args = parser.parse_args()
    if args.baseline:
        add_baseline(load_baseline(args.baseline))
    cores = os.cpu_count()
    peers = PEERS + CPU_FOREACH_PEERS
    thread_counts = sorted({1, cores})
    where = "{} cores".format(cores)
    if args.device == "cuda":
        peers = CUDA_PEERS + paper_package_peers()
        thread_counts = [cores]
        where = torch.cuda.get_device_name()
    print("torch {}, {}; ns per element: median over {} repetitions of {} steps (cv)".format(
        torch.__version__, where, args.repetitions, args.steps))
    for tensors, size, label in [(1, 1 << 24, "1 x 2^24"), (1000, 1 << 14, "1000 x 2^14"), (1000, 16, "1000 x 16")]:
        for threads in thread_counts:
            results = measure(peers, args.device, tensors, size, threads, args.repetitions, args.steps, args.only)
            print("\n{} elements, {} thread{}".format(label, threads, "s" if threads > 1 else ""))
            medians = {}
            for name, times in results.items():
                medians[name] = statistics.median(times)
                cv = statistics.stdev(times) / statistics.mean(times) if len(times) > 1 else 0.0
                step_us = medians[name] * tensors * size / 1e3
                print("  {:36s} {:8.2f} ns  (cv {:4.1%})  {:10.1f} us per step".format(name, medians[name], cv, step_us))
            for slow, fast in RATIOS:
                if slow in medians and fast in medians:
                    print("  {:36s} {:6.1f}x faster than {}".format(fast, medians[slow] / medians[fast], slow))


if __name__ == "__main__":
    main()
