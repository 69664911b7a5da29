// The study of the paper's claims (docs/study.md) on a small convolutional network trained in
// libtorch through multopt::adapters::TorchOptimizer: the MLP study's grid, tables and plots,
// with the CNN's width (channels per convolution layer) as the architecture axis.
// See --help and docs/study.md#the-cnn-study.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <multopt/adapters/torch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "datasets.hpp"
#include "options.hpp"
#include "study.hpp"
#include "study_results.hpp"

namespace {

constexpr int cnn_digits_epochs = 10;  // the MLP study's epochs on the digits

struct CnnOptions {
  bool digits = false;
  std::string data_path;
  std::string out_dir = "cnn_study_out";
  int epochs = 0;  // 0 until parsed: the MLP study's 10 on the digits, 5 on Fashion-MNIST
  unsigned seed = 1;
  int seeds = 3;
  int jobs = 0;  // 0: one per core
  bool reduced_grid = false;
  bool check_loss_falls = false;
  bool help = false;
};

std::string usage() {
  return "usage: cnn_study [options]\n"
         "Trains a small CNN (two 3x3 convolution layers with batch norm, ReLU and 2x2 max pooling,\n"
         "then a linear layer) in libtorch with SGD, Adam, Adagrad and RMSprop under the additive,\n"
         "multiplicative and hybrid rules (multopt's TorchOptimizer), over 5 learning-rate\n"
         "multipliers, 3 init scales, widths of 16 and 32 channels and several seeds; prints the\n"
         "study's tables and writes study.csv, study_loss.csv, study_tables.md and two PNGs.\n"
         "\n"
         "  --dataset fashion|digits  data set (default fashion: the first 10000 training images,\n"
         "                            5 epochs, target 80%; digits: all 1438, 10 epochs, 85%)\n"
         "  --data PATH               Fashion-MNIST directory or digits CSV (default:\n"
         "                            " FASHION_MNIST_DIR " or " DIGITS_CSV ")\n"
         "  --epochs N                training epochs\n"
         "  --seed N                  the first seed (default 1)\n"
         "  --seeds N                 seeds, from --seed on (default 3)\n"
         "  --jobs N                  runs in parallel, each on one thread (default: one per core)\n"
         "  --out DIR                 output directory (default cnn_study_out)\n"
         "  --reduced-grid            a small grid, for the test: SGD and MSGD, multipliers 1\n"
         "                            and 3, init scales 1 and 2\n"
         "  --check-loss-falls        exit with status 1 unless every run at the chosen rates\n"
         "                            ends with a lower training loss than its first epoch's\n"
         "  --help                    this text\n";
}

CnnOptions parse_cnn_options(int argc, const char* const* argv) {
  CnnOptions options;
  demo::read_flags(argc, argv, [&options](const std::string& flag, const auto& value, const auto& no_value) {
    if (flag == "--dataset") {
      options.digits = demo::detail::one_of(flag, value(), "fashion", "digits") == "digits";
    } else if (flag == "--data") {
      options.data_path = value();
      if (options.data_path.empty()) throw demo::UsageError("--data needs a path");
    } else if (flag == "--out") {
      options.out_dir = value();
      if (options.out_dir.empty()) throw demo::UsageError("--out needs a directory");
    } else if (flag == "--epochs") {
      options.epochs = int(demo::detail::parse_integer(flag, value(), 1, 1000));
    } else if (flag == "--seed") {
      options.seed = unsigned(demo::detail::parse_integer(flag, value(), 0, 4294967295LL));
    } else if (flag == "--seeds") {
      options.seeds = int(demo::detail::parse_integer(flag, value(), 2, 100));
    } else if (flag == "--jobs") {
      options.jobs = int(demo::detail::parse_integer(flag, value(), 1, 256));
    } else if (flag == "--reduced-grid") {
      no_value();
      options.reduced_grid = true;
    } else if (flag == "--check-loss-falls") {
      no_value();
      options.check_loss_falls = true;
    } else if (flag == "--help" || flag == "-h") {
      no_value();
      options.help = true;
    } else {
      return false;
    }
    return true;
  });
  if (options.epochs == 0) options.epochs = options.digits ? cnn_digits_epochs : demo::study_fashion_epochs;
  if (options.data_path.empty()) options.data_path = options.digits ? DIGITS_CSV : FASHION_MNIST_DIR;
  return options;
}

// The study's architecture axis: 16 or 32 channels in each convolution layer.
demo::ArchitectureAxis cnn_widths() { return {"width", "width", "channel", "channels", "ch", {16, 32}, 16}; }

// A data set as tensors: images N × 1 × side × side, labels N (int64).
struct Images {
  torch::Tensor images, labels;
  int side;
};

Images to_tensors(const demo::Dataset& data) {
  const int pixels = int(data.images.rows()), side = int(std::lround(std::sqrt(pixels)));
  if (side * side != pixels) throw std::runtime_error(std::to_string(pixels) + " pixels are not a square image");
  // Eigen stores one image per column, contiguously: row-major N × pixels.
  auto images = torch::from_blob(const_cast<float*>(data.images.data()), {data.size(), 1, side, side}).clone();
  auto labels = torch::from_blob(const_cast<int*>(data.labels.data()), {data.size()}, torch::kInt).to(torch::kLong);
  return {images, labels, side};
}

// conv 3×3 → batch norm → ReLU → max pool 2×2, twice, then a linear layer on the flattened
// maps. The convolutions have no bias: batch norm's shift takes its place.
struct CnnImpl : torch::nn::Module {
  CnnImpl(int side, int width)
      : conv1(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, width, 3).padding(1).bias(false)))),
        norm1(register_module("norm1", torch::nn::BatchNorm2d(width))),
        conv2(register_module("conv2",
                              torch::nn::Conv2d(torch::nn::Conv2dOptions(width, width, 3).padding(1).bias(false)))),
        norm2(register_module("norm2", torch::nn::BatchNorm2d(width))),
        linear(register_module("linear", torch::nn::Linear(width * (side / 4) * (side / 4), demo::class_count))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(norm1(conv1(x))), 2);
    x = torch::max_pool2d(torch::relu(norm2(conv2(x))), 2);
    return linear(x.flatten(1));
  }

  torch::nn::Conv2d conv1;
  torch::nn::BatchNorm2d norm1;
  torch::nn::Conv2d conv2;
  torch::nn::BatchNorm2d norm2;
  torch::nn::Linear linear;
};
TORCH_MODULE(Cnn);

// The initial model of a seed, drawn from its own generator so that runs on several threads
// draw the same weights. As the MLP's: He-normal weights times `init_scale`, and shifts
// uniform within ±1/√fan_in, as torch draws a layer's bias: non-zero, since the multiplicative
// rule scales a parameter by its magnitude and never moves a zero. Batch norm's scales start
// at 1, as in torch. The same seed draws the same normal deviates at every scale.
Cnn initial_cnn(int side, int width, unsigned seed, double init_scale) {
  Cnn model(side, width);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const torch::NoGradGuard no_grad;
  const auto he_normal = [&](torch::Tensor& weights) {
    const double fan_in = double(weights.numel() / weights.size(0));
    weights.copy_(torch::randn(weights.sizes(), generator) * (init_scale * std::sqrt(2.0 / fan_in)));
    return fan_in;
  };
  const auto small_uniform = [&](torch::Tensor& shifts, double fan_in) {
    const double bound = 1.0 / std::sqrt(fan_in);
    shifts.copy_(torch::rand(shifts.sizes(), generator) * (2.0 * bound) - bound);
  };
  small_uniform(model->norm1->bias, he_normal(model->conv1->weight));
  small_uniform(model->norm2->bias, he_normal(model->conv2->weight));
  small_uniform(model->linear->bias, he_normal(model->linear->weight));
  return model;
}

// Mean cross-entropy and accuracy, with batch norm's running statistics; in chunks, since
// 10 000 Fashion-MNIST images at once would need a gigabyte of feature maps.
demo::Evaluation evaluate(Cnn& model, const Images& data) {
  constexpr std::int64_t chunk = 1000;
  const torch::NoGradGuard no_grad;
  model->eval();
  const std::int64_t count = data.labels.size(0);
  double loss_sum = 0.0, correct = 0.0;
  for (std::int64_t first = 0; first < count; first += chunk) {
    const std::int64_t last = std::min(count, first + chunk);
    const auto logits = model->forward(data.images.slice(0, first, last));
    const auto labels = data.labels.slice(0, first, last);
    loss_sum += torch::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum).item<double>();
    correct += logits.argmax(1).eq(labels).sum().item<double>();
  }
  model->train();
  return {loss_sum / double(count), correct / double(count)};
}

multopt::NamedValues named_values(const multopt::Settings& settings) {
  multopt::NamedValues values;
  for (const auto& [name, value] : settings) values.emplace_back(name, std::stod(value));
  return values;
}

// One run of the grid, on the calling thread: stops after an epoch whose loss is not finite.
std::vector<demo::EpochRecord> train_cnn(const demo::StudyCell& cell, const Images& train_set, const Images& test_set,
                                         int epochs, int batch_size) {
  at::set_num_threads(1);  // per thread: parallelism comes from the runs
  Cnn model = initial_cnn(train_set.side, cell.architecture, cell.seed, cell.init_scale);
  const multopt::Settings settings =
      demo::full_settings(cell.spec, demo::scaled_rates(demo::chosen_rates(cell.spec), cell.lr_multiplier));
  multopt::adapters::TorchOptimizer optimizer(model->parameters(), cell.spec.base, cell.spec.rule,
                                              named_values(settings));
  std::vector<demo::EpochRecord> records{{0, evaluate(model, train_set).loss, evaluate(model, test_set), 0.0}};

  std::mt19937 shuffler(cell.seed);  // the batch order, as the MLP study's
  const int count = int(train_set.labels.size(0));
  std::vector<std::int64_t> order(static_cast<std::size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  double train_seconds = 0.0;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    std::shuffle(order.begin(), order.end(), shuffler);
    const auto shuffled = torch::from_blob(order.data(), {count}, torch::kLong);
    double loss_sum = 0.0;
    int batches = 0;
    for (int first = 0; first < count; first += batch_size, ++batches) {
      const auto batch = shuffled.slice(0, first, std::min(count, first + batch_size));
      optimizer.zero_grad();
      const auto loss = torch::cross_entropy_loss(model->forward(train_set.images.index_select(0, batch)),
                                                  train_set.labels.index_select(0, batch));
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>();
    }
    train_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    records.push_back({epoch, loss_sum / batches, evaluate(model, test_set), train_seconds});
    if (!std::isfinite(records.back().train_loss)) break;
  }
  return records;
}

// Every run at the chosen rates ends with a lower mean training loss than its first epoch's.
bool every_loss_fell(const std::vector<demo::StudyRun>& runs) {
  bool fell = true;
  for (const demo::StudyRun& run : runs) {
    if (run.cell.lr_multiplier != demo::reference_multiplier) continue;
    const double first = run.epochs[1].train_loss, last = run.epochs.back().train_loss;
    if (!(last < first)) {
      std::fprintf(stderr, "%s init ×%g width %d seed %u: the training loss did not fall (%.4f in epoch 1, %.4f in "
                   "epoch %d)\n", demo::display_name(run.cell.spec).c_str(), run.cell.init_scale,
                   run.cell.architecture, run.cell.seed, first, last, run.epochs.back().epoch);
      fell = false;
    }
  }
  return fell;
}

int run_cnn_study(const CnnOptions& options) {
  const demo::TrainTest data =
      demo::load_data(options.digits, options.data_path, options.digits ? 0 : demo::study_fashion_train_size);
  const Images train_set = to_tensors(data.train), test_set = to_tensors(data.test);
  const double target = options.digits ? demo::digits_target : demo::study_fashion_target;
  const demo::StudyGrid grid =
      demo::study_grid(options.reduced_grid, options.seed, options.seeds, options.epochs, target, cnn_widths());
  const int jobs = options.jobs > 0 ? options.jobs : int(std::max(1u, std::thread::hardware_concurrency()));
  constexpr int batch_size = 64;  // the MLP study's
  const std::string name = options.digits ? "digits" : "Fashion-MNIST";
  std::printf("CNN study: %s, %d training and %d test images of %dx%d, %d epochs of mini-batches of %d\n"
              "%zu optimizers x %zu seeds x %zu multipliers x %zu init scales x %zu widths = %zu runs, "
              "%d at a time\n\n",
              name.c_str(), data.train.size(), data.test.size(), train_set.side, train_set.side, grid.epochs,
              batch_size, grid.optimizers.size(), grid.seeds.size(), grid.lr_multipliers.size(),
              grid.init_scales.size(), grid.architecture.values.size(), grid.run_count(), jobs);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<demo::StudyRun> runs = demo::run_grid(grid, jobs, [&](const demo::StudyCell& cell, std::size_t) {
    return train_cnn(cell, train_set, test_set, grid.epochs, batch_size);
  });
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  demo::write_study_results(options.out_dir, runs, grid,
                            name + ", " + std::to_string(data.train.size()) + " training images, CNN", wall);
  if (options.check_loss_falls) {
    if (!every_loss_fell(runs)) return 1;
    std::printf("every run at the chosen rates ended with a lower training loss than its first epoch's\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CnnOptions options;
  try {
    options = parse_cnn_options(argc, argv);
  } catch (const demo::UsageError& error) {
    std::fprintf(stderr, "cnn_study: %s\n", error.what());
    return 2;
  }
  if (options.help) {
    std::cout << usage();
    return 0;
  }
  try {
    return run_cnn_study(options);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "cnn_study: %s\n", error.what());
    return 1;
  }
}
