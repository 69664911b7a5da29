// multopt_replay [--float | --params bf16|fp16 [--master | --stochastic-rounding SEED]] [--state bf16|fp16]
//                [--emit] CASE...
// Replays golden case files through multopt and reports the largest relative error of each,
// or with --emit writes the trajectory multopt computed in the same case format.
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "replay_types.hpp"

namespace {

// Double reproduces the float64 reference to rounding; float carries its own rounding
// (6e-8 relative), which near-zero parameters turn into up to ~1.5e-4 of the 1e-3 floor.
// 16-bit parameters start from the init rounded to 8 (bf16) or 11 (fp16) significant bits, so
// they are compared with the float replay from that same start: master weights must equal it
// (error 0), values rounded at every step stay within 16 units in the last place of the type,
// relative (docs/mixed-precision.md).
constexpr double kDoubleTolerance = 1e-12;
constexpr double kFloatTolerance = 5e-4;
constexpr double kBf16Tolerance = 16.0 / 256;
constexpr double kFp16Tolerance = 16.0 / 1024;
// 16-bit state (--state) rounds every state array to 8 (bf16) or 11 (fp16) significant bits at
// every step: its error is measured as a share of the trajectory's largest parameter
// (max_error_of_scale), as a parameter near zero would blow a relative error up; the golden
// cases stay within 0.51% (bf16) and 0.058% (fp16) of it (docs/mixed-precision.md).
constexpr double kState16Tolerance = 1e-2;

int usage() {
  std::cerr << "usage: multopt_replay [--float | --params bf16|fp16 [--master | --stochastic-rounding SEED]]\n"
               "                      [--state bf16|fp16] [--emit] CASE...\n"
               "  replays each golden case file and prints PASS|FAIL <name> max_rel_err=<x>\n"
               "  (--state: max_err_of_scale, the largest error over the largest |parameter|)\n"
               "  (16-bit: the error against --float from the rounded init);\n"
               "  --float                    step in float instead of double\n"
               "  --params bf16|fp16         store the parameters in that type (the case's init rounded\n"
               "                             to it through float), compute in float, gradients as fp32;\n"
               "                             rounded to nearest even after each step unless\n"
               "  --master                   an fp32 master copy is stepped (and --emit writes it)\n"
               "  --stochastic-rounding SEED or rounded stochastically from SEED (a whole number)\n"
               "  --state bf16|fp16          store the optimizer's state in that type, computed in float\n"
               "                             (with --float or --params)\n"
               "  --emit                     write the computed trajectory in the case format instead\n"
               "                             (16-bit: with the rounded init it started from)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  namespace golden = multopt::golden;
  bool use_float = false, emit = false, master = false, stochastic = false;
  std::string params;
  multopt::StorageMode storage{multopt::Rounding::nearest, 0};
  std::string state;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--float") == 0) {
      use_float = true;
    } else if (std::strcmp(argv[i], "--emit") == 0) {
      emit = true;
    } else if (std::strcmp(argv[i], "--params") == 0 && i + 1 < argc) {
      params = argv[++i];
      if (params != "bf16" && params != "fp16") return usage();
    } else if (std::strcmp(argv[i], "--state") == 0 && i + 1 < argc) {
      state = argv[++i];
      if (state != "bf16" && state != "fp16") return usage();
      storage.state = state == "bf16" ? multopt::StateStorage::bfloat16 : multopt::StateStorage::float16;
    } else if (std::strcmp(argv[i], "--master") == 0) {
      master = true;
    } else if (std::strcmp(argv[i], "--stochastic-rounding") == 0 && i + 1 < argc) {
      const std::string seed = argv[++i];
      const auto [stop, error] = std::from_chars(seed.data(), seed.data() + seed.size(), storage.seed);
      if (error != std::errc() || stop != seed.data() + seed.size() || seed.empty()) return usage();
      stochastic = true;
    } else if (std::strcmp(argv[i], "--help") == 0 || argv[i][0] == '-') {
      return usage();
    } else {
      files.emplace_back(argv[i]);
    }
  }
  if (files.empty() || (master && stochastic) || ((master || stochastic) && params.empty()) ||
      (use_float && !params.empty()) || (!state.empty() && !use_float && params.empty()))
    return usage();
  if (master) storage.rounding = multopt::Rounding::master;
  if (stochastic) storage.rounding = multopt::Rounding::stochastic;
  const double tolerance = !state.empty()   ? kState16Tolerance
                           : params == "bf16" ? kBf16Tolerance
                           : params == "fp16" ? kFp16Tolerance
                           : use_float        ? kFloatTolerance
                                              : kDoubleTolerance;

  int passed = 0, failed = 0;
  for (const auto& file : files) {
    try {
      std::ifstream in(file);
      if (!in) throw std::runtime_error("cannot open " + file);
      auto c = golden::read_case(in);
      golden::Trajectory trajectory;
      if (params == "bf16") {
        trajectory = golden::replay_bf16(c, storage);
        c = golden::rounded_to<Eigen::bfloat16>(c);
      } else if (params == "fp16") {
        trajectory = golden::replay_fp16(c, storage);
        c = golden::rounded_to<Eigen::half>(c);
      } else {
        trajectory = use_float ? golden::replay_float(c, {multopt::Rounding::master, 0, storage.state})
                               : golden::replay_double(c);
      }
      if (emit) {
        golden::write_case(std::cout, c, trajectory);
        continue;
      }
      const auto& reference = params.empty() ? c.params : golden::replay_float(c);
      const double err = state.empty() ? golden::max_relative_error(trajectory, reference)
                                       : golden::max_error_of_scale(trajectory, reference);
      const bool ok = err <= (master && state.empty() ? 0.0 : tolerance);
      (ok ? passed : failed) += 1;
      std::printf("%s %s %s=%.3g\n", ok ? "PASS" : "FAIL", c.name.empty() ? file.c_str() : c.name.c_str(),
                  state.empty() ? "max_rel_err" : "max_err_of_scale", err);
    } catch (const std::exception& e) {
      ++failed;
      std::printf("FAIL %s error: %s\n", file.c_str(), e.what());
    }
  }
  if (!emit) std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
