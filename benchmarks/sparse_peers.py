"""One step of an embedding table with sparse gradients: multopt.torch against torch.optim.

    PYTHONPATH=build/python /usr/bin/python3 benchmarks/sparse_peers.py [--repetitions 5] [--steps 4]
        [--rows 22] [--only TEXT ...]

A float32 table of 2^22 rows (--rows) of 64 and batches of 2^14 row indices drawn with repeats
from a Zipf-like law (a row below x with probability log(x + 1) / log(rows + 1)), the batch's
gradient a sparse COO tensor with a row of values per index, as nn.Embedding(sparse=True) makes
it. Each step takes the next of 8 batches. On 1 thread and on every core it times torch.optim's
Adagrad and SparseAdam (their sparse steps), multopt.torch's Adagrad, SparseAdam, MSparseAdam and
HSparseAdam, and, to show what stepping rows saves, multopt.torch's Adagrad stepping the whole
table with a batch's gradient made dense (its time per element the batch touches). The optimizers share the table (each with its own state) and
take turns within each repetition, in a new order each time; it prints the median ns per touched
element (each touched row once), the coefficient of variation over the repetitions, and the
ratios.
"""

import argparse
import math
import os
import random
import statistics
import time

import torch

import multopt.torch as mt

WIDTH, BATCH, BATCHES = 64, 1 << 14, 8

# (name, optimizer of the table, whether it steps the gradient made dense)
PEERS = [
    ("torch.optim.Adagrad (sparse)", lambda t: torch.optim.Adagrad([t], lr=1e-2), False),
    ("torch.optim.SparseAdam", lambda t: torch.optim.SparseAdam([t], lr=1e-3), False),
    ("multopt.torch.Adagrad", lambda t: mt.Adagrad([t], lr=1e-2), False),
    ("multopt.torch.SparseAdam", lambda t: mt.SparseAdam([t], lr=1e-3), False),
    ("multopt.torch.MSparseAdam", lambda t: mt.MSparseAdam([t], lr_out=1e-3), False),
    ("multopt.torch.HSparseAdam", lambda t: mt.HSparseAdam([t], lr_out=1e-3, lr=1e-3, g=0.5), False),
    ("multopt.torch.Adagrad, whole table", lambda t: mt.Adagrad([t], lr=1e-2), True),
]
RATIOS = [("torch.optim.Adagrad (sparse)", "multopt.torch.Adagrad"),
          ("torch.optim.SparseAdam", "multopt.torch.SparseAdam"),
          ("multopt.torch.Adagrad, whole table", "multopt.torch.Adagrad")]


def batches(rows):
    """The batches' sparse gradients, and the number of elements each touches."""
    generator = torch.Generator().manual_seed(0)
    made = []
    for _ in range(BATCHES):
        u = torch.rand(BATCH, generator=generator, dtype=torch.float64)
        indices = (torch.exp(u * math.log(rows + 1)).long() - 1).clamp_(0, rows - 1)
        values = torch.rand(BATCH, WIDTH, generator=generator) * 0.9 + 0.1
        gradient = torch.sparse_coo_tensor(indices.unsqueeze(0), values, (rows, WIDTH))
        made.append((gradient, int(torch.unique(indices).numel()) * WIDTH))
    return made


def measure(table, gradients, threads, repetitions, steps, only):
    torch.set_num_threads(threads)
    runs = []
    for name, make, dense in PEERS:
        if only and not any(text in name for text in only):
            continue
        # The whole table's step takes the first batch made dense, every step (one dense gradient
        # is as large as the table).
        grads = [(gradients[0][0].to_dense(), gradients[0][1])] * BATCHES if dense else gradients
        opt = make(table)
        table.grad = grads[0][0]
        opt.step()  # makes the state
        runs.append((name, opt, grads, []))
    order = random.Random(0)
    for _ in range(repetitions):
        for name, opt, grads, times in order.sample(runs, len(runs)):
            elapsed, touched = 0.0, 0
            for step in range(steps):
                grad, count = grads[step % BATCHES]
                table.grad = grad
                start = time.perf_counter()
                opt.step()
                elapsed += time.perf_counter() - start
                touched += count
            times.append(elapsed / touched * 1e9)
    return {name: times for name, _, _, times in runs}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="steps per timing")
    parser.add_argument("--rows", type=int, default=22, help="the table has 2^ROWS rows")
    parser.add_argument("--only", nargs="+", default=[], metavar="TEXT",
                        help="time only the rows whose name contains one of these")
    args = parser.parse_args()
    rows = 1 << args.rows
    table = torch.nn.Parameter(torch.rand(rows, WIDTH) + 0.5)
    gradients = batches(rows)
    touched = statistics.mean(count for _, count in gradients)
    print("torch {}, {} cores; a table of 2^{} x {} float32, batches of {} rows ({:.0f} distinct on average); "
          "ns per touched element: median over {} repetitions of {} steps (cv)".format(
              torch.__version__, os.cpu_count(), args.rows, WIDTH, BATCH, touched / WIDTH, args.repetitions,
              args.steps))
    for threads in sorted({1, os.cpu_count()}):
        results = measure(table, gradients, threads, args.repetitions, args.steps, args.only)
        print("\n{} thread{}".format(threads, "s" if threads > 1 else ""))
        medians = {}
        for name, times in results.items():
            medians[name] = statistics.median(times)
            cv = statistics.stdev(times) / statistics.mean(times) if len(times) > 1 else 0.0
            print("  {:40s} {:9.2f} ns  (cv {:4.1%})  {:10.1f} us per step".format(
                name, medians[name], cv, medians[name] * touched / 1e3))
        for slow, fast in RATIOS:
            if slow in medians and fast in medians:
                print("  {:40s} {:6.1f}x faster than {}".format(fast, medians[slow] / medians[fast], slow))


if __name__ == "__main__":
    main()
