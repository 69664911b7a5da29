// The stepping machinery under every base and rule: each tensor's own step count, the same
// values stepped as one tensor or cut at odd offsets (serial or threaded), Eigen objects stepped
// in place, and optimizers that move but do not copy.
#include <algorithm>
#include <cmath>
#include <iterator>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace {

template <class S>
std::vector<S> gradient(std::size_t tensor, long step, std::size_t n) {
  std::vector<S> g(n);
  for (std::size_t i = 0; i < n; ++i) g[i] = S(std::sin(0.37 * double(i) + 1.3 * double(step) + 2.1 * double(tensor)));
  return g;
}

}  // namespace

// Every combination made by name.
TEMPLATE_TEST_CASE("each tensor keeps its own step count: one added later runs as in a fresh optimizer",
                   "[property]", float, double) {
  using S = TestType;
  const auto combination = GENERATE(from_range(test::every_combination()));
  INFO(test::describe(combination));
  const std::size_t sizes[] = {7, 19, 1};
  const long added_at[] = {0, 5, 8}, total_steps = 15;
  std::vector<std::vector<S>> params, grads;
  for (std::size_t k = 0; k < 3; ++k) {
    std::mt19937 rng(static_cast<unsigned>(k) + 5);
    params.push_back(test::uniform<S>(rng, sizes[k], -2.0, 2.0));
    grads.emplace_back(sizes[k]);
  }
  const auto shared = test::make_stateful<S>(combination);
  std::vector<test::Made<S>> alone;  // each tensor in its own fresh optimizer, on copies of its values
  std::vector<std::vector<S>> alone_params(3), alone_grads(3);
  std::size_t mismatches = 0;
  for (long step = 0; step < total_steps; ++step) {
    for (std::size_t k = 0; k < 3; ++k) {
      if (added_at[k] != step) continue;
      REQUIRE(shared->add_params(params[k].data(), grads[k].data(), sizes[k]) == k);
      CHECK(shared->step_count(k) == 0);
      CHECK(test::tensor_state(*shared, k).holds_no_array());
      alone_params[k] = params[k];
      alone_grads[k].resize(sizes[k]);
      alone.push_back(test::make_stateful<S>(combination));
      alone.back()->add_params(alone_params[k].data(), alone_grads[k].data(), sizes[k]);
    }
    for (std::size_t k = 0; k < alone.size(); ++k) {
      const auto g = gradient<S>(k, step - added_at[k], sizes[k]);
      std::copy(g.begin(), g.end(), grads[k].begin());
      std::copy(g.begin(), g.end(), alone_grads[k].begin());
      alone[k]->step();
    }
    shared->step();
    for (std::size_t k = 0; k < alone.size(); ++k) {
      mismatches += !test::same_bits(params[k], alone_params[k]);
      mismatches += test::tensor_state(*shared, k) != test::tensor_state(*alone[k], 0);
    }
  }
  CHECK(mismatches == 0);
  CHECK(shared->step_count(0) == 15);
  CHECK(shared->step_count(1) == 10);
  CHECK(shared->step_count(2) == 7);
}

namespace {

// n values stepped as one tensor, as tensors cut at odd offsets, and cut and threaded: every
// element must see the same arithmetic, wherever it falls in a packet or a padded tail.
template <class S>
std::size_t split_mismatches(const test::Combination& combination) {
  constexpr std::size_t n = 1000;
  const std::size_t cuts[] = {0, 3, 20, 521, n};
  std::mt19937 rng(6);
  const auto init = test::uniform<S>(rng, n, -2.0, 2.0);
  std::vector<S> whole = init, pieces = init, threaded = init, grad(n);
  const auto one = test::make_stateful<S>(combination), cut = test::make_stateful<S>(combination),
             cut_threaded = test::make_stateful<S>(combination);
  one->add_params(whole.data(), grad.data(), n);
  for (std::size_t k = 0; k + 1 < std::size(cuts); ++k) {
    cut->add_params(pieces.data() + cuts[k], grad.data() + cuts[k], cuts[k + 1] - cuts[k]);
    cut_threaded->add_params(threaded.data() + cuts[k], grad.data() + cuts[k], cuts[k + 1] - cuts[k]);
  }
  cut_threaded->set_thread_settings(test::threaded(3, 40));  // threads in OpenMP builds; the same serial loop otherwise

  std::size_t mismatches = 0;
  for (int t = 0; t < 20; ++t) {
    const auto g = test::uniform<S>(rng, n, -1.0, 1.0);
    std::copy(g.begin(), g.end(), grad.begin());  // in place: the optimizers hold its address
    for (const auto* opt : {&one, &cut, &cut_threaded}) (*opt)->step();
    mismatches += !test::same_bits(whole, pieces) + !test::same_bits(whole, threaded);
  }
  const auto expected = test::tensor_state(*one, 0);
  for (std::size_t a = 0; a < expected.arrays.size(); ++a) {
    std::vector<S> joined, joined_threaded;
    for (std::size_t k = 0; k < cut->tensor_count(); ++k) {
      const auto part = test::tensor_state(*cut, k).arrays[a];
      const auto part_threaded = test::tensor_state(*cut_threaded, k).arrays[a];
      joined.insert(joined.end(), part.begin(), part.end());
      joined_threaded.insert(joined_threaded.end(), part_threaded.begin(), part_threaded.end());
    }
    mismatches += !test::same_bits(joined, expected.arrays[a]) + !test::same_bits(joined_threaded, expected.arrays[a]);
  }
  for (std::size_t k = 0; k < cut->tensor_count(); ++k)  // scalar state: one per tensor, the same in each
    mismatches += !test::same_bits(test::tensor_state(*cut, k).scalars, expected.scalars) +
                  !test::same_bits(test::tensor_state(*cut_threaded, k).scalars, expected.scalars);
  return mismatches + (whole == init);  // a run that never moved would prove nothing
}

}  // namespace

// Every combination made by name.
TEMPLATE_TEST_CASE("one tensor or the same values cut at odd offsets, serial or threaded, step bit-identically",
                   "[property]", float, double) {
  const auto combination = GENERATE(from_range(test::every_combination()));
  INFO(test::describe(combination));
  CHECK(split_mismatches<TestType>(combination) == 0);
}

namespace {

// Registers an Eigen object and steps it beside the same values through the pointer overload:
// the object's own memory must change, in place, to the same values.
template <class Opt, class P, class G>
void check_steps_in_place(P&& param, const G& grad) {
  using S = typename Opt::Scalar;
  const S* const address = param.data();
  const std::size_t n = std::size_t(param.size());
  const std::vector<S> before(address, address + n);
  std::vector<S> expected = before;
  const std::vector<S> g(grad.data(), grad.data() + n);
  const auto h = test::stateful_hyper<typename Opt::Hyper>();
  Opt by_eigen = test::make<Opt>(h), by_pointer = test::make<Opt>(h);
  by_eigen.add_params(param, grad);
  by_pointer.add_params(expected.data(), g.data(), n);
  for (int t = 0; t < 3; ++t) {
    by_eigen.step();
    by_pointer.step();
  }
  CHECK(param.data() == address);
  const std::vector<S> after(address, address + n);
  CHECK(test::same_bits(after, expected));
  CHECK(after != before);
}

}  // namespace

TEST_CASE("Eigen overloads step the caller's arrays, matrices and maps in place", "[property][eigen]") {
  SECTION("ArrayXf") {
    Eigen::ArrayXf param = Eigen::ArrayXf::LinSpaced(37, -2.0f, 2.0f), grad = Eigen::ArrayXf::LinSpaced(37, 1.0f, -1.0f);
    check_steps_in_place<multopt::MAdam<float>>(param, grad);
  }
  SECTION("ArrayXXd") {
    Eigen::ArrayXXd param = Eigen::ArrayXXd::Random(3, 5), grad = Eigen::ArrayXXd::Random(3, 5);
    check_steps_in_place<multopt::HAdagrad<double>>(param, grad);
  }
  SECTION("Map over a std::vector, with a const Map gradient") {
    std::vector<float> buffer(19), grad_buffer(19);
    for (std::size_t i = 0; i < buffer.size(); ++i) {
      buffer[i] = 0.1f * float(i) - 1.0f;
      grad_buffer[i] = std::cos(float(i));
    }
    Eigen::Map<Eigen::ArrayXf> param(buffer.data(), 19);
    check_steps_in_place<multopt::MRMSprop<float>>(param, Eigen::Map<const Eigen::ArrayXf>(grad_buffer.data(), 19));
  }
  SECTION("MatrixXf") {
    Eigen::MatrixXf param = Eigen::MatrixXf::Random(4, 3), grad = Eigen::MatrixXf::Random(4, 3);
    check_steps_in_place<multopt::EAdam<float>>(param, grad);
  }
  SECTION("row-major matrix") {
    using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    RowMajor param = RowMajor::Random(3, 7), grad = RowMajor::Random(3, 7);
    check_steps_in_place<multopt::SGD<double>>(param, grad);
  }
  SECTION("a column of a matrix, leaving the other columns alone") {
    Eigen::MatrixXd param = Eigen::MatrixXd::Random(5, 3), grad = Eigen::MatrixXd::Random(5, 3);
    const Eigen::MatrixXd before = param;
    check_steps_in_place<multopt::MSGD<double>>(param.col(1), grad.col(1));
    CHECK((param.col(0) == before.col(0)));
    CHECK((param.col(2) == before.col(2)));
    CHECK((param.col(1) != before.col(1)));
  }
}

// A copy would step the caller's buffers a second time with state of its own, so optimizers
// move but do not copy; a moved-to optimizer goes on exactly where the original was.
static_assert(!std::is_copy_constructible_v<multopt::HAdam<float>> && !std::is_copy_assignable_v<multopt::HAdam<float>>);
static_assert(std::is_nothrow_move_constructible_v<multopt::HAdam<float>> &&
              std::is_nothrow_move_assignable_v<multopt::HAdam<float>>);

TEST_CASE("a moved optimizer steps on bit-identically to one that stayed put", "[property]") {
  std::vector<float> stayed(23), moved(23), grad(23);
  for (std::size_t i = 0; i < grad.size(); ++i) {
    stayed[i] = moved[i] = 0.5f - 0.04f * float(i);
    grad[i] = std::sin(float(i));
  }
  multopt::HAdam<float> reference, original;
  reference.add_params(stayed.data(), grad.data(), stayed.size());
  original.add_params(moved.data(), grad.data(), moved.size());
  for (int k = 0; k < 3; ++k) {
    reference.step();
    original.step();
  }
  multopt::HAdam<float> target(std::move(original));
  for (int k = 0; k < 4; ++k) {
    reference.step();
    target.step();
  }
  CHECK(target.step_count(0) == 7);
  CHECK(stayed == moved);
  multopt::HAdam<float> assigned;
  assigned = std::move(target);
  reference.step();
  assigned.step();
  CHECK(stayed == moved);
}
