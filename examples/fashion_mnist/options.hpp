// The command line of the demo. Every malformed or out-of-range value is a UsageError,
// which main reports with exit status 2.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>

#include "optimizers.hpp"

// Where Debian's dataset-fashion-mnist installs the data set.
#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
// CMake passes the vendored file's absolute path; this default suits runs from the repository.
#ifndef DIGITS_CSV
#define DIGITS_CSV "examples/data/digits.csv.gz"
#endif

namespace demo {

// The Fashion-MNIST study's defaults (docs/study.md): a subset and fewer epochs, so that its
// 1080 runs take minutes, and a target that the shorter training reaches.
constexpr int study_fashion_train_size = 10000, study_fashion_epochs = 5;
constexpr double study_fashion_target = 0.80;
constexpr double digits_target = 0.85;  // the demo's target, which the digits study keeps

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  bool digits = false;  // the small digits set instead of Fashion-MNIST
  std::string data_path;
  int epochs = 0;  // 0 until parsed: 10, or the Fashion-MNIST study's 5
  int batch_size = 64;
  bool all_optimizers = false;
  double target = 0.0;  // the first epoch reaching this test accuracy: 0.85, the Fashion-MNIST study's 0.80
  unsigned seed = 1;
  std::string out_dir = "fashion_mnist_out";
  bool sweep = false;
  bool check_loss_falls = false;
  bool study = false;
  int seeds = 3;           // the study's seeds: seed, seed + 1, ...
  int train_size = 0;      // the first N training samples; 0: all, or the Fashion-MNIST study's 10 000
  int jobs = 0;            // the study's parallel runs; 0: one per core
  bool reduced_grid = false;
  Precision precision = Precision::fp32;
  bool bf16_state = false;  // --state bf16: the optimizer's state stored in bf16
  bool help = false;
};

inline std::string usage() {
  return "usage: fashion_mnist [options]\n"
         "Trains a 784-256-10 MLP on Fashion-MNIST with SGD and Adam under the additive,\n"
         "multiplicative and hybrid update rules, then prints a comparison table and writes\n"
         "curves.csv, noise.csv and curves.png (gnuplot) into the output directory.\n"
         "\n"
         "  --dataset fashion|digits  data set (default fashion; digits: 64-256-10 in seconds)\n"
         "  --data PATH               Fashion-MNIST directory or digits CSV (default:\n"
         "                            " FASHION_MNIST_DIR " or " DIGITS_CSV ")\n"
         "  --epochs N                training epochs (default 10; the Fashion-MNIST study: 5)\n"
         "  --optimizers default|all  default: SGD and Adam with each rule (6 optimizers);\n"
         "                            all: also Adagrad, RMSprop, Adamax, NAdam, RAdam,\n"
         "                            Adadelta and Lion (27)\n"
         "  --target ACC              test accuracy in (0, 1) to count epochs to (default 0.85;\n"
         "                            the Fashion-MNIST study: 0.80)\n"
         "  --batch-size N            mini-batch size (default 64)\n"
         "  --seed N                  seed of the initial weights, batch order and stochastic\n"
         "                            rounding (default 1)\n"
         "  --precision fp32|bf16|bf16-master|bf16-stochastic\n"
         "                            how the weights are stored (default fp32): in bf16,\n"
         "                            rounded to nearest, from fp32 master weights, or rounded\n"
         "                            stochastically (seeded by --seed); the forward and backward\n"
         "                            passes compute in fp32 on the stored weights\n"
         "  --state fp32|bf16         how the optimizer's state is stored (default fp32): in bf16,\n"
         "                            computed in fp32 and rounded to nearest\n"
         "  --out DIR                 output directory (default fashion_mnist_out)\n"
         "  --sweep                   run the learning-rate sweep instead: train each optimizer\n"
         "                            with each of its five candidate rates on the first five\n"
         "                            sixths of the training set, rank them on the last sixth\n"
         "  --check-loss-falls        exit with status 1 unless every trained model's loss on\n"
         "                            the training set is below the initial model's\n"
         "  --study                   run the study instead (docs/study.md): all twelve\n"
         "                            optimizers at 5 learning-rate multipliers, 3 init scales,\n"
         "                            1 and 3 hidden layers, several seeds; writes study.csv,\n"
         "                            study_loss.csv, study_tables.md and two PNGs\n"
         "  --seeds N                 the study's seeds, from --seed on (default 3)\n"
         "  --train-size N            train on the first N training samples (default: all;\n"
         "                            the Fashion-MNIST study: 10000)\n"
         "  --jobs N                  the study's runs in parallel (default: one per core)\n"
         "  --reduced-grid            the study on a small grid, for the test: SGD and MSGD,\n"
         "                            multipliers 1 and 3, init scales 1 and 2\n"
         "  --help                    this text\n";
}

namespace detail {

inline long long parse_integer(const std::string& flag, const std::string& text, long long min,
                                long long max) {
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || value < min || value > max) {
    throw UsageError(flag + " needs an integer from " + std::to_string(min) + " to " + std::to_string(max) +
                     ", not '" + text + "'");
  }
  return value;
}

inline double parse_fraction(const std::string& flag, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !(value > 0.0 && value < 1.0))
    throw UsageError(flag + " needs a number between 0 and 1 (0.85 for 85%), not '" + text + "'");
  return value;
}

inline std::string one_of(const std::string& flag, const std::string& text, const char* first, const char* second) {
  if (text != first && text != second)
    throw UsageError(flag + " is " + first + " or " + second + ", not '" + text + "'");
  return text;
}

inline Precision precision_named(const std::string& flag, const std::string& text) {
  std::string known;
  for (const auto& [precision, name] : precision_names()) {
    if (text == name) return precision;
    known += (known.empty() ? "" : ", ") + name;
  }
  throw UsageError(flag + " is one of " + known + ", not '" + text + "'");
}

}  // namespace detail

// Reads the command line's flags, "--flag value" and "--flag=value" alike: calls
// handle(flag, value, no_value) for each, where value() takes the flag's value and no_value()
// refuses one; handle returns false for a flag it does not know.
template <class Handle>
void read_flags(int argc, const char* const* argv, const Handle& handle) {
  for (int k = 1; k < argc; ++k) {
    std::string flag = argv[k];
    std::optional<std::string> attached;
    if (const auto equals = flag.find('='); flag.rfind("--", 0) == 0 && equals != std::string::npos) {
      attached = flag.substr(equals + 1);
      flag.resize(equals);
    }
    const auto value = [&]() -> std::string {
      if (attached) return *attached;
      if (k + 1 >= argc) throw UsageError(flag + " needs a value");
      return argv[++k];
    };
    const auto no_value = [&]() {
      if (attached) throw UsageError(flag + " takes no value");
    };
    if (!handle(flag, value, no_value)) throw UsageError("unknown option '" + flag + "' (see --help)");
  }
}

inline Options parse_options(int argc, const char* const* argv) {
  Options options;
  read_flags(argc, argv, [&options](const std::string& flag, const auto& value, const auto& no_value) {
    if (flag == "--dataset") {
      options.digits = detail::one_of(flag, value(), "fashion", "digits") == "digits";
    } else if (flag == "--data") {
      options.data_path = value();
      if (options.data_path.empty()) throw UsageError("--data needs a path");
    } else if (flag == "--epochs") {
      options.epochs = int(detail::parse_integer(flag, value(), 1, 1000));
    } else if (flag == "--optimizers") {
      options.all_optimizers = detail::one_of(flag, value(), "default", "all") == "all";
    } else if (flag == "--target") {
      options.target = detail::parse_fraction(flag, value());
    } else if (flag == "--batch-size") {
      options.batch_size = int(detail::parse_integer(flag, value(), 1, 65536));
    } else if (flag == "--seed") {
      options.seed = unsigned(detail::parse_integer(flag, value(), 0, 4294967295LL));
    } else if (flag == "--precision") {
      options.precision = detail::precision_named(flag, value());
    } else if (flag == "--state") {
      const std::string text = value();
      if (text != "fp32" && text != "bf16") throw UsageError(flag + " is one of fp32, bf16, not '" + text + "'");
      options.bf16_state = text == "bf16";
    } else if (flag == "--out") {
      options.out_dir = value();
      if (options.out_dir.empty()) throw UsageError("--out needs a directory");
    } else if (flag == "--sweep") {
      no_value();
      options.sweep = true;
    } else if (flag == "--check-loss-falls") {
      no_value();
      options.check_loss_falls = true;
    } else if (flag == "--study") {
      no_value();
      options.study = true;
    } else if (flag == "--seeds") {
      options.seeds = int(detail::parse_integer(flag, value(), 2, 100));
    } else if (flag == "--train-size") {
      options.train_size = int(detail::parse_integer(flag, value(), 1, 1000000));
    } else if (flag == "--jobs") {
      options.jobs = int(detail::parse_integer(flag, value(), 1, 256));
    } else if (flag == "--reduced-grid") {
      no_value();
      options.reduced_grid = true;
    } else if (flag == "--help" || flag == "-h") {
      no_value();
      options.help = true;
    } else {
      return false;
    }
    return true;
  });
  if (options.sweep && options.study) throw UsageError("--sweep and --study exclude each other");
  if (options.study && options.bf16_state)
    throw UsageError("--state bf16 is for the comparison and the sweep; the study keeps fp32 state");
  if (options.study && options.precision != Precision::fp32)
    throw UsageError("--precision " + to_string(options.precision) + " is for the comparison and the sweep; the study "
                     "trains in fp32");
  const bool fashion_study = options.study && !options.digits;
  if (options.epochs == 0) options.epochs = fashion_study ? study_fashion_epochs : 10;
  if (options.target == 0.0) options.target = fashion_study ? study_fashion_target : digits_target;
  if (options.train_size == 0 && fashion_study) options.train_size = study_fashion_train_size;
  if (options.data_path.empty()) options.data_path = options.digits ? DIGITS_CSV : FASHION_MNIST_DIR;
  return options;
}

}  // namespace demo
