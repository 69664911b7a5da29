// Inputs on which a fuzzer (fuzz/, docs/reliability.md) found a bug, kept in
// tests/data/fuzz_regressions/ and run through the fuzzer's own code with any compiler: every
// *.ckpt must be refused by each load of checkpoint_load_fuzzer (leaving the optimizer as it
// was), every *.case by the case-file parser.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "case_file.hpp"
#include "checkpoint_training.hpp"

namespace {

std::vector<std::filesystem::path> regression_inputs() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(MULTOPT_TEST_DATA "/fuzz_regressions"))
    files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string contents(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("every input on which a fuzzer found a bug is now refused cleanly", "[fuzz]") {
  const auto files = regression_inputs();
  REQUIRE_FALSE(files.empty());
  for (const auto& file : files) {
    INFO(file.filename().string());
    const std::string bytes = contents(file);
    if (file.extension() == ".ckpt") {
      CHECK(multopt::fuzz::load_as_fuzzed(bytes) == 0);
    } else {
      REQUIRE(file.extension() == ".case");
      std::istringstream in(bytes);
      CHECK_THROWS_AS(multopt::golden::read_case(in), std::runtime_error);
    }
  }
}
