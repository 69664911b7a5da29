// libFuzzer target: the golden case-file parser (tools/case_file.hpp) on any text. It must
// return a case or throw std::runtime_error, its only documented exception; anything else
// (another exception, a sanitizer report) ends in a crash report.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

#include "case_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  try {
    multopt::golden::read_case(in);
  } catch (const std::runtime_error&) {
  }
  return 0;
}
