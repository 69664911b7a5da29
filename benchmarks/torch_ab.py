"""Two builds of multopt.torch side by side: this one against another (an older commit's).

    PYTHONPATH=build/python /usr/bin/python3 benchmarks/torch_ab.py BASELINE_DIR [--trials 5]
        [--repetitions 5] [--steps 3]

BASELINE_DIR holds the other build's package (its build/python). For Adam, MAdam and HAdam over
float32 parameters, 1 tensor of 2^24 elements and 1000 tensors of 2^14, on 1 thread and on every
core, each trial makes new parameters and a new optimizer of each build (so that no build keeps
a lucky or unlucky place of its arrays in memory for the whole run), times their steps in turn,
repetition by repetition, and takes the ratio of the medians (this build's time over the
other's). It prints the median ratio over the trials with its smallest and largest.
torch_peers.py --baseline puts the same rows among the peers'.
"""

import argparse
import os
import statistics
import time

import torch

import multopt.torch as mt
from torch_peers import load_baseline

CLASSES = [("Adam", dict(lr=1e-3)), ("MAdam", dict(lr_out=1e-3)), ("HAdam", dict(lr_out=1e-3, lr=1e-3, g=0.5))]


def timed(opt, steps, elements):
    start = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return (time.perf_counter() - start) / steps / elements * 1e9


def trial(modules, name, settings, tensors, size, repetitions, steps):
    """The ratio of the medians of this build's and the other's ns per element, fresh tensors."""
    opts = []
    for module in modules:
        params = [(torch.rand(size) + 0.5).requires_grad_() for _ in range(tensors)]
        for p in params:
            p.grad = torch.randn(size) * 1e-2
        opt = getattr(module, name)(params, **settings)
        opt.step()  # makes the state
        opts.append(opt)
    times = [[], []]
    for _ in range(repetitions):
        for k, opt in enumerate(opts):
            times[k].append(timed(opt, steps, tensors * size))
    return statistics.median(times[0]) / statistics.median(times[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", help="a folder with another build's multopt package")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps per timing")
    args = parser.parse_args()
    modules = (mt, load_baseline(args.baseline))
    print("torch {}, {} cores; this build's ns per element / the baseline's: median over {} trials "
          "[least, greatest], each the ratio of medians of {} repetitions of {} steps".format(
              torch.__version__, os.cpu_count(), args.trials, args.repetitions, args.steps))
    torch.manual_seed(0)
    for tensors, size, label in [(1, 1 << 24, "1 x 2^24"), (1000, 1 << 14, "1000 x 2^14")]:
        for threads in sorted({1, os.cpu_count()}):
            torch.set_num_threads(threads)
            for name, settings in CLASSES:
                ratios = [trial(modules, name, settings, tensors, size, args.repetitions, args.steps)
                          for _ in range(args.trials)]
                print("  {:12s} {} thread{}  {:6s} {:5.2f}  [{:.2f}, {:.2f}]".format(
                    label, threads, "s" if threads > 1 else " ", name, statistics.median(ratios), min(ratios),
                    max(ratios)), flush=True)


if __name__ == "__main__":
    main()
