// Step time and memory per rank of ShardedOptimizer<MAdam<float>> over one arena of parameters
// (docs/distributed.md). Every rank takes the same steps; the times and memory are the largest
// over the ranks, since the slowest rank sets the pace and the fullest one runs out first.
//
//   mpirun -np N build/benchmarks/mpi_step_bench [elements (default 2^22)] [steps (default 50)]
#include <multopt/distributed/mpi.hpp>
#include <multopt/multopt.hpp>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

namespace {

unsigned long long most_over_ranks(unsigned long long mine) {
  unsigned long long most = 0;
  MPI_Allreduce(&mine, &most, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
  return most;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const std::size_t elements = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : std::size_t(1) << 22;
  const int steps = argc > 2 ? std::atoi(argv[2]) : 50;
  {
    std::mt19937 rng{unsigned(rank)};  // different gradients on every rank
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<float> params(elements, 0.5f), grads(elements);
    for (float& g : grads) g = uniform(rng);

    multopt::ShardedOptimizer<multopt::MAdam<float>> opt(MPI_COMM_WORLD, multopt::arg::lr_out = 1e-3);
    opt.inner().set_thread_settings(multopt::ThreadSettings{1});  // one core per rank, as ranks are usually placed
    opt.add_params(params.data(), grads.data(), elements);
    opt.step();  // allocates the state

    MPI_Barrier(MPI_COMM_WORLD);
    const auto start = std::chrono::steady_clock::now();
    for (int step = 0; step < steps; ++step) opt.step();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    const auto step_us = most_over_ranks((unsigned long long)(1e6 * seconds / steps));
    const auto state = most_over_ranks(opt.state_bytes());
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const auto peak_rss = most_over_ranks((unsigned long long)usage.ru_maxrss * 1024);  // ru_maxrss: KiB
    if (rank == 0) {
      std::printf("| %d | %zu | %.2f | %.2f | %.1f |\n", ranks, elements, step_us / 1000.0, state / 1048576.0,
                  peak_rss / 1048576.0);
    }
  }
  MPI_Finalize();
  return 0;
}
