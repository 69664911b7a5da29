// libFuzzer target: each input, as it is and with its two CRC-32s recomputed, is loaded as a
// checkpoint into the trained optimizers of checkpoint_training.hpp. A load must either throw
// one of load_checkpoint's documented exceptions and leave the optimizer, its parameters and
// its schedules exactly as they were, or succeed and leave an optimizer that steps. Anything
// else (another exception, a changed optimizer, a sanitizer report) is a crash: an exception
// leaving this function calls std::terminate, which aborts.
#include <cstddef>
#include <cstdint>
#include <string>

#include "checkpoint_training.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  multopt::fuzz::load_as_fuzzed(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
