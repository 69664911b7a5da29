// multopt_replay [--float] [--emit] CASE...
// Replays golden case files through multopt and reports the largest relative error of each,
// or with --emit writes the trajectory multopt computed in the same case format.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "case_file.hpp"

namespace {

// Double reproduces the float64 reference to rounding; float carries its own rounding
// (6e-8 relative), which near-zero parameters turn into up to ~1.5e-4 of the 1e-3 floor.
constexpr double kDoubleTolerance = 1e-12;
constexpr double kFloatTolerance = 5e-4;

int usage() {
  std::cerr << "usage: multopt_replay [--float] [--emit] CASE...\n"
               "  replays each golden case file and prints PASS|FAIL <name> max_rel_err=<x>;\n"
               "  --float  step in float instead of double\n"
               "  --emit   write the computed trajectory in the case format instead\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool use_float = false, emit = false;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--float") == 0) use_float = true;
    else if (std::strcmp(argv[i], "--emit") == 0) emit = true;
    else if (std::strcmp(argv[i], "--help") == 0 || argv[i][0] == '-') return usage();
    else files.emplace_back(argv[i]);
  }
  if (files.empty()) return usage();

  int passed = 0, failed = 0;
  for (const auto& file : files) {
    try {
      std::ifstream in(file);
      if (!in) throw std::runtime_error("cannot open " + file);
      const auto c = multopt::golden::read_case(in);
      const auto trajectory =
          use_float ? multopt::golden::replay<float>(c) : multopt::golden::replay<double>(c);
      if (emit) {
        multopt::golden::write_case(std::cout, c, trajectory);
        continue;
      }
      const double err = multopt::golden::max_relative_error(trajectory, c.params);
      const bool ok = err <= (use_float ? kFloatTolerance : kDoubleTolerance);
      (ok ? passed : failed) += 1;
      std::printf("%s %s max_rel_err=%.3g\n", ok ? "PASS" : "FAIL",
                  c.name.empty() ? file.c_str() : c.name.c_str(), err);
    } catch (const std::exception& e) {
      ++failed;
      std::printf("FAIL %s error: %s\n", file.c_str(), e.what());
    }
  }
  if (!emit) std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
