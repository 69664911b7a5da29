// A tensor's last partial packet is stepped on a zero-padded copy by the same compiled loop as
// full packets (step.hpp), so an element's result does not depend on where in a tensor it sits.
#include <algorithm>
#include <random>
#include <vector>

#include "test_support.hpp"

namespace {

// Six steps of two tensors in one optimizer, under settings that turn on every stage before the
// base (clipping, maximize, both decays, the learning-rate factor): one of 64 elements, a
// multiple of every packet width, and one of `tail` elements, too few to fill a packet, which
// holds the first tail elements of the other and gets the same gradients.
template <class S>
void check_tail(const test::Combination& combination, std::size_t tail) {
  auto opt = test::make_stateful<S>(combination);
  opt->set("decoupled_weight_decay", 0.02, 0);
  opt->set("lr_factor", 0.7, 0);
  opt->set("maximize", 1, 0);
  opt->set_max_grad_norm(0.5);
  std::mt19937 rng(5);
  std::vector<S> full = test::uniform<S>(rng, 64, 0.1, 2.0), full_grad(64);
  std::vector<S> part(full.begin(), full.begin() + long(tail)), part_grad(tail);
  opt->add_params(full.data(), full_grad.data(), full.size());
  opt->add_params(part.data(), part_grad.data(), part.size());
  for (int step = 0; step < 6; ++step) {
    const std::vector<S> fresh = test::uniform<S>(rng, 64, -1.0, 1.0);
    std::copy(fresh.begin(), fresh.end(), full_grad.begin());  // in place: the optimizer holds its address
    std::copy_n(fresh.begin(), tail, part_grad.begin());
    opt->step();
  }
  REQUIRE(opt->grad_norm() > 0.5);  // the clipping was active
  CHECK(test::same_bits(part, std::vector<S>(full.begin(), full.begin() + long(tail))));
}

}  // namespace

TEMPLATE_TEST_CASE("an element steps alike in a full packet and in a tensor's padded tail", "[stepping]", double,
                   float, Eigen::bfloat16, Eigen::half) {
  const auto combination = GENERATE(from_range(test::every_combination()));
  const std::size_t tail = GENERATE(std::size_t(1), std::size_t(3));
  INFO(test::describe(combination) << ", a tail of " << tail);
  check_tail<TestType>(combination, tail);
}
