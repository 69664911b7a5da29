// libFuzzer target: the golden case files of tools/case_file.hpp on any text, read and, where
// accepted, replayed and written back (case_file_check.hpp says what must hold). A failed check
// aborts with what failed; a sanitizer report or an unexpected exception ends the run too.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "case_file_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string problem =
      multopt::fuzz::case_file_problem(std::string(reinterpret_cast<const char*>(data), size));
  if (!problem.empty()) {
    std::fprintf(stderr, "case_file_fuzzer: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
