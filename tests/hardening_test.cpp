// Inputs an adversarial caller tries (issue 12 of the project): huge tensors, thread counts,
// settings text and failing streams (extreme hyperparameters: extreme_values_test.cpp). Each is
// refused with a message naming it, or works.
#include <clocale>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

using test::names;

TEST_CASE("a tensor too large for its state to be addressed is refused at add_params", "[hardening]") {
  multopt::Adam<float> opt;
  float p = 0.0f, g = 0.0f;
  const std::size_t huge = std::numeric_limits<std::size_t>::max() / 2;
  REQUIRE_THROWS_MATCHES(opt.add_params(&p, &g, huge), std::length_error, names({std::to_string(huge)}));
  CHECK(opt.tensor_count() == 0);
}

TEST_CASE("a thread count beyond the cap is refused", "[hardening]") {
  multopt::Adam<float> opt;
  REQUIRE_THROWS_MATCHES(opt.set_thread_settings({100000}), std::invalid_argument, names({"threads", "100000"}));
  CHECK(opt.thread_settings().threads == 0);
  REQUIRE_NOTHROW(opt.set_thread_settings({multopt::ThreadSettings::max_threads}));
}

TEST_CASE("settings text is read the same way everywhere and quoted briefly", "[hardening]") {
  using multopt::detail::parse_number;
  CHECK(parse_number("lr", "1e-310") == 1e-310);  // a subnormal is a number
  REQUIRE_THROWS_MATCHES(parse_number("lr", "1e400"), std::invalid_argument, names({"lr", "'1e400'", "range"}));
  for (const char* spaced : {" 1", "1 ", "", "1,5", "0x10"})
    REQUIRE_THROWS_MATCHES(parse_number("lr", spaced), std::invalid_argument, names({"lr", "not"}));
  const std::string long_text(100000, '7');
  try {
    parse_number("lr", long_text + "x");
    FAIL("a long bad value was accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).size() < 200);
    CHECK_THAT(e.what(), Catch::Contains("100001 characters"));
  }
  // A decimal-comma locale, where the system has one, changes nothing.
  if (std::setlocale(LC_NUMERIC, "de_DE.UTF-8") != nullptr) {
    CHECK(parse_number("lr", "0.001") == 0.001);
    CHECK_THROWS(parse_number("lr", "0,001"));
    std::setlocale(LC_NUMERIC, "C");
  }
}

namespace {

// A stream that fails (badbit) after `good` bytes.
class FailingBuffer : public std::streambuf {
 public:
  FailingBuffer(std::string bytes, std::size_t good) : bytes_(std::move(bytes)), good_(good) {}

 protected:
  int_type underflow() override {
    if (at_ >= good_) throw std::ios_base::failure("disk error");
    return traits_type::to_int_type(bytes_[at_]);
  }
  int_type uflow() override {
    const int_type c = underflow();
    ++at_;
    return c;
  }

 private:
  std::string bytes_;
  std::size_t good_, at_ = 0;
};

}  // namespace

TEST_CASE("a stream that fails while a checkpoint is read is reported as failed, with the offset", "[hardening]") {
  multopt::Adam<float> opt;
  std::vector<float> p(4, 1.0f), g(4, 0.5f);
  opt.add_params(p.data(), g.data(), 4);
  opt.step();
  std::ostringstream out;
  multopt::save_checkpoint(out, opt);
  FailingBuffer buffer(out.str(), 56);
  std::istream in(&buffer);
  // The header is read in one piece, whose partial count the stream does not report after an
  // error: the offset named is that of the last whole field read.
  REQUIRE_THROWS_MATCHES(multopt::load_checkpoint(in, opt), std::runtime_error,
                         names({"failed", "20", "header"}));
  CHECK(opt.step_count(0) == 1);
}
