// What checkpoint_load_fuzzer does with an input, and the optimizers it loads it into: shared
// with the program that writes its seed corpus (so that the seeds fit them) and with
// tests/fuzz_regressions_test.cpp (so that an input found by fuzzing is retested the same way).
#pragma once

#include <cstddef>
#include <cstdint>
#include <istream>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <multopt/multopt.hpp>

namespace multopt::fuzz {

// An optimizer over small tensors that it owns, with schedules, as a training program holds
// them. Tensor k has sizes[k] elements and is in group groups[k]; group 1 exists if used.
template <class Opt, class... Schedules>
class Training {
 public:
  using S = typename Opt::Scalar;

  Training(const std::vector<std::pair<std::string, double>>& group1_settings,
           const std::vector<std::size_t>& sizes, const std::vector<std::size_t>& groups,
           Schedules... schedules)
      : schedules_(std::move(schedules)...), params_(sizes.size()), grads_(sizes.size()) {
    auto hyper = opt_.hyper(0);
    hyper.set_all(group1_settings);
    opt_.add_group(hyper);
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      for (std::size_t i = 0; i < sizes[k]; ++i) params_[k].push_back(S(0.5) + S(0.1) * S(i % 7));
      grads_[k].assign(sizes[k], S(0));
      opt_.add_params(params_[k].data(), grads_[k].data(), sizes[k], groups[k]);
    }
  }
  Training(const Training&) = delete;  // the optimizer points into params_ and grads_
  Training& operator=(const Training&) = delete;

  // Steps and applies the schedules once per epoch, with gradients that vary by step.
  void train(int epochs) {
    for (int epoch = 0; epoch < epochs; ++epoch) {
      for (std::size_t k = 0; k < params_.size(); ++k)
        for (std::size_t i = 0; i < params_[k].size(); ++i)
          grads_[k][i] = S(0.3) * params_[k][i] - S(0.05) * S((i + std::size_t(epoch)) % 5);
      opt_.step();
      std::apply([&](auto&... schedule) { (schedule.apply(opt_), ...); }, schedules_);
    }
  }

  std::string save() const {
    std::ostringstream out(std::ios::binary);
    std::apply([&](const auto&... schedule) { save_checkpoint(out, opt_, schedule...); }, schedules_);
    return out.str();
  }

  void load(const std::string& bytes, const LoadOptions& options) {
    std::istringstream in(bytes, std::ios::binary);
    std::apply([&](auto&... schedule) { load_checkpoint(in, opt_, options, schedule...); }, schedules_);
  }

  // Everything a load may change (the checkpoint of the optimizer and schedules: their
  // hyperparameters, step counts, state arrays and epochs) and the parameters, which it must
  // not: bytes, so that NaN state compares equal to itself.
  std::string snapshot() const {
    std::string bytes = save();
    for (const auto& param : params_)
      bytes.append(reinterpret_cast<const char*>(param.data()), param.size() * sizeof(S));
    return bytes;
  }

 private:
  Opt opt_;
  std::tuple<Schedules...> schedules_;
  std::vector<std::vector<S>> params_, grads_;
};

// Adam with AMSGrad in group 1, which a step schedule halves the learning rate of every
// other epoch; an empty tensor and one not a multiple of any SIMD width.
template <class S>
struct AdamTraining : Training<Adam<S>, StepSchedule> {
  AdamTraining()
      : Training<Adam<S>, StepSchedule>({{"amsgrad", 1}, {"weight_decay", 0.01}}, {5, 0, 3}, {0, 0, 1},
                                        StepSchedule({2, 1.0, 1.0, 0.5}, 1)) {}
};

// The hybrid rule on SGD with Nesterov momentum in group 1, an exponential mix on all groups.
template <class S>
struct HsgdTraining : Training<HSGD<S>, ExponentialMixSchedule, StepSchedule> {
  HsgdTraining()
      : Training<HSGD<S>, ExponentialMixSchedule, StepSchedule>(
            {{"momentum", 0.9}, {"nesterov", 1}}, {4, 9}, {1, 0}, ExponentialMixSchedule({0.8, 1, false}),
            StepSchedule({3, 0.9, 0.9, 1.0}, 0)) {}
};

// Loads `bytes` into a trained T. Returns whether the load succeeded, after which T must
// step; a load that throws one of load_checkpoint's documented exceptions must leave T exactly
// as it was, or this throws std::logic_error. Any other exception propagates.
template <class T>
bool load_into_trained(const std::string& bytes, const LoadOptions& options) {
  T training;
  training.train(2);
  const std::string before = training.snapshot();
  const auto refused = [&] {
    if (training.snapshot() != before) throw std::logic_error("a failed load changed the optimizer");
    return false;
  };
  try {
    training.load(bytes, options);
  } catch (const std::runtime_error&) {
    return refused();
  } catch (const std::invalid_argument&) {
    return refused();
  }
  const std::string loaded = training.snapshot();
  try {
    training.train(1);
  } catch (const std::invalid_argument&) {
    // The loaded settings overflow a step (lr = 1e308 under Adam's bias correction): refused
    // before anything changed.
    if (training.snapshot() != loaded) throw std::logic_error("a refused step changed the optimizer");
  }
  return true;
}

// Random bytes almost never carry a right CRC-32, which would keep a fuzzer from ever reaching
// past the checksums. This writes both where the input's layout puts them: the header's after
// H bytes of header (H at bytes 12 to 19), the whole checkpoint's in the last four bytes.
// Inputs too short for one keep those bytes.
inline std::string with_checksums_fixed(std::string bytes) {
  const auto crc_of_first = [&](std::size_t count) {
    detail::Crc32 crc;
    crc.update(reinterpret_cast<const unsigned char*>(bytes.data()), count);
    detail::Bytes out;
    detail::put(out, crc.value());
    return std::string(out.begin(), out.end());
  };
  if (bytes.size() < 24) return bytes;
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto header_length = detail::get<std::uint64_t>(data + 12);
  if (header_length > bytes.size() - 24) return bytes;
  const std::size_t header_end = 20 + std::size_t(header_length);
  bytes.replace(header_end, 4, crc_of_first(header_end));
  if (bytes.size() >= header_end + 8) bytes.replace(bytes.size() - 4, 4, crc_of_first(bytes.size() - 4));
  return bytes;
}

// What checkpoint_load_fuzzer does with every input: loads it, as it is and with its checksums
// fixed, into each training above (a float optimizer allowing double checkpoints, a double
// one). Returns how many of the four loads succeeded.
inline int load_as_fuzzed(const std::string& bytes) {
  int loaded = 0;
  for (const std::string& input : {bytes, with_checksums_fixed(bytes)}) {
    loaded += load_into_trained<AdamTraining<float>>(input, LoadOptions{/*allow_narrowing=*/true});
    loaded += load_into_trained<HsgdTraining<double>>(input, LoadOptions{});
  }
  return loaded;
}

}  // namespace multopt::fuzz
