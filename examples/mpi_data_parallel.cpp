// Data-parallel training of the demo's MLP (examples/fashion_mnist/) on the digits set across
// MPI ranks, with the optimizer state sharded (docs/distributed.md). Every rank holds the whole
// model and the whole data set, and computes the gradients of its own slice of each mini-batch;
// multopt::ShardedOptimizer averages them, steps 1/N of the parameters on each rank, and gives
// every rank the updated model. The optimizer is the demo's MAdam with the sweep's learning rate.
//
//   mpirun -np 2 build/examples/mpi_data_parallel [--epochs N] [--batch-size N] [--seed N]
//                                                 [--data DIGITS_CSV] [--check-loss-falls]
#include <multopt/distributed/mpi.hpp>
#include <multopt/multopt.hpp>

#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "fashion_mnist/datasets.hpp"
#include "fashion_mnist/mlp.hpp"
#include "fashion_mnist/optimizers.hpp"
#include "fashion_mnist/options.hpp"
#include "fashion_mnist/training.hpp"

namespace {

constexpr int hidden_units = 256;  // the demo's MLP

struct Options {
  int epochs = 3;
  int batch_size = 64;  // the global batch, split over the ranks
  unsigned seed = 1;
  std::string data_path = DIGITS_CSV;
  bool check_loss_falls = false;
};

Options parse(int argc, char** argv) {
  Options options;
  for (int k = 1; k < argc; ++k) {
    const std::string flag = argv[k];
    const auto value = [&]() -> std::string {
      if (k + 1 >= argc) throw demo::UsageError(flag + " needs a value");
      return argv[++k];
    };
    if (flag == "--epochs") {
      options.epochs = int(demo::detail::parse_integer(flag, value(), 1, 1000));
    } else if (flag == "--batch-size") {
      options.batch_size = int(demo::detail::parse_integer(flag, value(), 1, 65536));
    } else if (flag == "--seed") {
      options.seed = unsigned(demo::detail::parse_integer(flag, value(), 0, 4294967295LL));
    } else if (flag == "--data") {
      options.data_path = value();
    } else if (flag == "--check-loss-falls") {
      options.check_loss_falls = true;
    } else {
      throw demo::UsageError("unknown option '" + flag + "'");
    }
  }
  return options;
}

using Optimizer = multopt::ShardedOptimizer<multopt::MAdam<float>>;

int train(const Options& options, int rank, int ranks) {
  const demo::TrainTest data = demo::load_digits(options.data_path);
  // The same seed on every rank: the same initial model and the same order of mini-batches.
  demo::Mlp model(int(data.train.images.rows()), hidden_units, demo::class_count, options.seed);
  const double initial_loss = model.evaluate(data.train).loss;

  Optimizer optimizer(MPI_COMM_WORLD);
  const demo::OptimizerSpec spec{"adam", "multiplicative"};
  for (const auto& [name, value] : demo::full_settings(spec, demo::chosen_rates(spec)))
    optimizer.set(name, std::stod(value));
  optimizer.inner().set_thread_settings(demo::single_thread());  // the ranks already share the cores
  const std::vector<demo::ParameterView> parameters = model.parameters();
  std::size_t parameter_count = 0;
  for (const demo::ParameterView& p : parameters) {
    optimizer.add_params(p.values, p.grads, p.size);
    parameter_count += p.size;
  }
  if (rank == 0) {
    std::printf("digits: %d training and %d test samples, MLP %d-%d-%d (%zu parameters), %s on %d rank%s, "
                "global mini-batches of %d\n",
                data.train.size(), data.test.size(), int(data.train.images.rows()), hidden_units,
                demo::class_count, parameter_count, demo::display_name(spec).c_str(), ranks, ranks == 1 ? "" : "s",
                options.batch_size);
    std::printf("initial model: training loss %.4f\n", initial_loss);
  }

  std::mt19937 shuffler(options.seed);
  std::vector<int> order(std::size_t(data.train.size()));
  std::iota(order.begin(), order.end(), 0);
  Eigen::MatrixXf batch;
  std::vector<int> labels;
  double seconds = 0.0;
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    std::shuffle(order.begin(), order.end(), shuffler);
    double loss_sum = 0.0;  // this rank's share of the sum of the batches' mean losses
    int batches = 0;
    for (int first = 0; first < data.train.size(); first += options.batch_size, ++batches) {
      const int count = std::min(options.batch_size, data.train.size() - first);
      // This rank's slice of the batch; a rank whose slice is empty contributes zeros.
      const int begin = first + count * rank / ranks, end = first + count * (rank + 1) / ranks;
      if (begin == end) {
        for (const demo::ParameterView& p : parameters) std::fill_n(p.grads, p.size, 0.0f);
        optimizer.step();
        continue;
      }
      demo::gather_batch(data.train, order, begin, end - begin, batch, labels);
      const double share = double(end - begin) / count;
      loss_sum += model.train_batch(batch, labels) * share;
      // The model's gradients are means over this rank's slice; weighted by the slice's share
      // of the batch (times the rank count, which the optimizer's average divides out), they
      // average to the gradient of the whole batch.
      for (const demo::ParameterView& p : parameters)
        for (std::size_t i = 0; i < p.size; ++i) p.grads[i] *= float(share * ranks);
      optimizer.step();
    }
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double epoch_loss = 0.0;
    MPI_Reduce(&loss_sum, &epoch_loss, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) {
      std::printf("epoch %d/%d: training loss %.4f, test accuracy %.2f%%, %.2f s\n", epoch, options.epochs,
                  epoch_loss / batches, 100.0 * model.evaluate(data.test).accuracy, seconds);
    }
  }

  const unsigned long long state_bytes = optimizer.state_bytes();
  unsigned long long most_state = 0, all_state = 0;
  MPI_Reduce(&state_bytes, &most_state, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, 0, MPI_COMM_WORLD);
  MPI_Reduce(&state_bytes, &all_state, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
  // Every rank holds the same parameters, so every rank reaches the same verdict.
  const double final_loss = model.evaluate(data.train).loss;
  if (rank == 0) {
    std::printf("optimizer state: at most %llu bytes per rank, %llu in all (what one process would hold)\n",
                most_state, all_state);
    std::printf("final training loss %.4f (initial %.4f)\n", final_loss, initial_loss);
  }
  if (options.check_loss_falls && !(final_loss < initial_loss)) {
    if (rank == 0) std::fprintf(stderr, "mpi_data_parallel: the training loss did not fall\n");
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  Eigen::setNbThreads(1);
  int status = 0;
  try {
    status = train(parse(argc, argv), rank, ranks);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "mpi_data_parallel (rank %d): %s\n", rank, error.what());
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  MPI_Finalize();
  return status;
}
