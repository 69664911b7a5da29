// 16-bit state (StateStorage, docs/mixed-precision.md): a state array stored in bfloat16 or half
// is widened as the step reads it and rounded as it stores it, so that each step is the fp32
// step of the widened state, its state rounded: to nearest even, or, with stochastic rounding,
// to one of the two neighbours of the fp32 result.
#include "caller_state.hpp"
#include "test_support.hpp"

#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <vector>

namespace {

using multopt::StateStorage;
using test::CallerState;
using test::filled;

template <class T>
constexpr StateStorage storage_of = std::is_same_v<T, Eigen::bfloat16> ? StateStorage::bfloat16 : StateStorage::float16;

template <class T>
std::vector<T> rounded(const std::vector<float>& values) {
  std::vector<T> out;
  for (float v : values) out.push_back(T(v));
  return out;
}

template <class T>
std::vector<float> widened(const std::vector<T>& values) {
  std::vector<float> out;
  for (T v : values) out.push_back(float(v));
  return out;
}

template <class T>
std::uint16_t bits(T x) {
  return Eigen::numext::bit_cast<std::uint16_t>(x);
}

// The 16-bit value next to x's nearest on x's other side (x not representable).
template <class T>
std::uint16_t other_neighbour(float x) {
  const T nearest(x);
  const bool below = float(nearest) < x, negative = bits(nearest) & 0x8000u;
  return std::uint16_t(below != negative ? bits(nearest) + 1 : bits(nearest) - 1);
}

// How many elements of `narrow` are x's nearest 16-bit value (the others must be its other
// neighbour, or the test fails).
template <class T>
std::size_t count_nearest(const std::vector<T>& narrow, const std::vector<float>& wide) {
  REQUIRE(narrow.size() == wide.size());
  std::size_t nearest = 0;
  for (std::size_t i = 0; i < wide.size(); ++i) {
    if (bits(narrow[i]) == bits(T(wide[i]))) {
      ++nearest;
      continue;
    }
    INFO("element " << i << ": " << float(narrow[i]) << " from " << wide[i]);
    REQUIRE(float(T(wide[i])) != wide[i]);
    REQUIRE(bits(narrow[i]) == other_neighbour<T>(wide[i]));
  }
  return nearest;
}

// Steps `narrow` (state of type T) and `wide` (fp32 state, set before each step to narrow's,
// widened) with the same gradients; calls check(step) after each step.
template <class Opt, class T, class Check>
void step_side_by_side(CallerState<Opt, T>& narrow, CallerState<Opt>& wide, std::mt19937& rng, int steps,
                       Check check) {
  for (int step = 0; step < steps; ++step) {
    for (std::size_t k = 0; k < narrow.tensors.size(); ++k) {
      auto& t = narrow.tensors[k];
      t.grad = filled<typename Opt::Scalar>(rng, t.param.size(), -2.0, 2.0);
      wide.tensors[k].grad = t.grad;
      t.refs(narrow.groups[t.group].base, narrow.options.storage);  // makes the state arrays
      for (std::size_t s = 0; s < t.arrays.size(); ++s) wide.tensors[k].arrays[s] = widened(t.arrays[s]);
      wide.tensors[k].new_arrays = t.new_arrays;
    }
    const multopt::StepReport narrow_report = narrow.step(), wide_report = wide.step();
    REQUIRE(std::isnan(narrow_report.grad_norm) == std::isnan(wide_report.grad_norm));  // NaN: not clipping
    if (!std::isnan(narrow_report.grad_norm)) REQUIRE(narrow_report.grad_norm == wide_report.grad_norm);
    for (std::size_t k = 0; k < narrow.tensors.size(); ++k) {
      INFO("tensor " << k << ", step " << step);
      REQUIRE(narrow.tensors[k].steps == wide.tensors[k].steps);
      REQUIRE(narrow.tensors[k].scalars == wide.tensors[k].scalars);
      REQUIRE(test::same_bits(narrow.tensors[k].param, wide.tensors[k].param));
      REQUIRE(test::same_bits(narrow.tensors[k].master, wide.tensors[k].master));
    }
    check(step);
  }
}

template <class Opt, class T>
void check_rounded_to_nearest() {
  using Base = typename Opt::BaseType;
  const auto stateful = test::stateful_hyper<typename Opt::Hyper>();
  auto second = stateful;
  second.lr_factor = 0.5;
  second.maximize = true;
  CallerState<Opt, T> narrow;
  CallerState<Opt> wide;
  narrow.groups = wide.groups = {stateful, second};
  narrow.options.max_grad_norm = wide.options.max_grad_norm = 2.0;
  narrow.options.threading = test::threaded(3, 16);  // the fp32 side steps on one thread
  narrow.options.storage.state = storage_of<T>;
  std::mt19937 rng(11);
  for (std::size_t size : {std::size_t(3), std::size_t(37), std::size_t(2100)}) {  // 2100: three blocks
    const auto param = filled<float>(rng, size, -1.0, 1.0);
    const std::size_t group = narrow.tensors.size() % 2;
    narrow.tensors.push_back(test::CallerTensor<Base, float, T>::of(param, {}, group));
    wide.tensors.push_back(test::CallerTensor<Base, float>::of(param, {}, group));
  }
  step_side_by_side(narrow, wide, rng, 4, [&](int) {
    for (std::size_t k = 0; k < narrow.tensors.size(); ++k)
      for (std::size_t s = 0; s < Base::array_count; ++s) {
        INFO("tensor " << k << ", " << Base::array_names[s]);
        CHECK(test::same_bits(narrow.tensors[k].arrays[s], rounded<T>(wide.tensors[k].arrays[s])));
      }
  });
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("16-bit state: each step is the fp32 step of the widened state, rounded to nearest",
                        "[state_storage]", test::EveryOptimizer<float>) {
  SECTION("bfloat16") { check_rounded_to_nearest<TestType, Eigen::bfloat16>(); }
  SECTION("half") { check_rounded_to_nearest<TestType, Eigen::half>(); }
}

TEST_CASE("16-bit parameters with 16-bit state: the state rounds as the parameters do", "[state_storage]") {
  using P = Eigen::bfloat16;
  using T = Eigen::bfloat16;
  using Opt = multopt::HAdam<P>;
  for (const multopt::Rounding rounding :
       {multopt::Rounding::master, multopt::Rounding::nearest, multopt::Rounding::stochastic}) {
    INFO(multopt::rounding_name(rounding));
    CallerState<Opt, T> narrow;
    CallerState<Opt> wide;
    narrow.groups = wide.groups = {test::stateful_hyper<Opt::Hyper>()};
    narrow.options.storage = wide.options.storage = {rounding, 5};
    narrow.options.storage.state = StateStorage::bfloat16;
    narrow.options.threading = test::threaded(2, 64);
    std::mt19937 rng(2);
    for (std::size_t size : {std::size_t(1500), std::size_t(9)}) {
      const auto param = filled<P>(rng, size, -1.0, 1.0);
      narrow.tensors.push_back(test::CallerTensor<Opt::BaseType, P, T>::of(param, {}));
      wide.tensors.push_back(test::CallerTensor<Opt::BaseType, P>::of(param, {}));
    }
    std::size_t nearest = 0, total = 0;
    step_side_by_side(narrow, wide, rng, 3, [&](int) {
      for (std::size_t k = 0; k < narrow.tensors.size(); ++k)
        for (std::size_t s = 0; s < 2; ++s) {  // exp_avg, exp_avg_sq
          nearest += count_nearest(narrow.tensors[k].arrays[s], wide.tensors[k].arrays[s]);
          total += wide.tensors[k].arrays[s].size();
        }
    });
    // Stochastic rounding goes to the farther neighbour with the probability of its nearness:
    // about a quarter of the time for values spread within their unit in the last place.
    if (rounding == multopt::Rounding::stochastic) {
      CHECK(nearest > total / 2);
      CHECK(nearest < total * 7 / 8);
    } else {
      CHECK(nearest == total);
    }
  }
}

TEST_CASE("16-bit state gives the same bits at any thread count, with stochastic rounding too", "[state_storage]") {
  using P = Eigen::half;
  using T = Eigen::bfloat16;
  using Opt = multopt::MAdam<P>;
  std::vector<std::vector<std::uint16_t>> results;
  for (const int threads : {1, 2, 3}) {
    CallerState<Opt, T> caller;
    caller.groups = {test::stateful_hyper<Opt::Hyper>()};
    caller.options.storage = {multopt::Rounding::stochastic, 99, StateStorage::bfloat16};
    caller.options.threading = test::threaded(threads, 64);
    std::mt19937 rng(8);
    for (std::size_t size : {std::size_t(40), std::size_t(3000), std::size_t(7)})
      caller.tensors.push_back(
          test::CallerTensor<Opt::BaseType, P, T>::of(filled<P>(rng, size, -1, 1), filled<P>(rng, size, -1, 1)));
    for (int step = 0; step < 3; ++step) caller.step();
    std::vector<std::uint16_t> all;
    for (const auto& t : caller.tensors) {
      for (P v : t.param) all.push_back(bits(v));
      for (const auto& array : t.arrays)
        for (T v : array) all.push_back(bits(v));
    }
    results.push_back(all);
  }
  CHECK(results[0] == results[1]);
  CHECK(results[0] == results[2]);
}

TEST_CASE("16-bit state with a gradient given as rows steps only those rows, as a dense step would",
          "[state_storage]") {
  using Opt = multopt::MAdam<float>;
  using T = Eigen::bfloat16;
  constexpr std::size_t rows = 30, width = 8;
  std::mt19937 rng(4);
  const auto table = filled<float>(rng, rows * width, -1.0, 1.0);
  const std::vector<std::int64_t> touched{17, 3, 25, 3};
  const auto values = filled<float>(rng, touched.size() * width, -1.0, 1.0);
  // The same step with the gradient given densely: rows summed, the others' left alone (MAdam's
  // state of an untouched row would change under a dense zero gradient, so those are compared as
  // they were).
  std::vector<float> dense(rows * width, 0.0f);
  for (std::size_t r = 0; r < touched.size(); ++r)
    for (std::size_t i = 0; i < width; ++i) dense[std::size_t(touched[r]) * width + i] += values[r * width + i];
  CallerState<Opt, T> sparse, full;
  sparse.groups = full.groups = {Opt::Hyper()};
  sparse.options.storage.state = full.options.storage.state = StateStorage::bfloat16;
  sparse.tensors.push_back(test::CallerTensor<Opt::BaseType, float, T>::of(table, values));
  full.tensors.push_back(test::CallerTensor<Opt::BaseType, float, T>::of(table, dense));
  std::vector<multopt::TensorRefs<Opt::BaseType, float>> refs{sparse.tensors[0].refs({}, sparse.options.storage)};
  refs[0].rows = {touched.data(), touched.size(), width};
  multopt::step_tensors(refs, sparse.groups, sparse.options, sparse.work);
  full.step();
  for (std::size_t r = 0; r < rows; ++r) {
    const bool stepped = std::find(touched.begin(), touched.end(), std::int64_t(r)) != touched.end();
    INFO("row " << r);
    for (std::size_t i = r * width; i < (r + 1) * width; ++i) {
      CHECK(sparse.tensors[0].param[i] == (stepped ? full.tensors[0].param[i] : table[i]));
      for (std::size_t s = 0; s < 2; ++s)
        CHECK(bits(sparse.tensors[0].arrays[s][i]) == (stepped ? bits(full.tensors[0].arrays[s][i]) : 0));
    }
  }
}

TEST_CASE("16-bit state is refused where the storage mode does not say it, or for double", "[state_storage]") {
  using Opt = multopt::Adam<float>;
  CallerState<Opt, Eigen::bfloat16> caller;
  caller.groups = {Opt::Hyper()};
  std::mt19937 rng(1);
  caller.tensors.push_back(test::CallerTensor<Opt::BaseType, float, Eigen::bfloat16>::of(filled<float>(rng, 9, -1, 1),
                                                                                         filled<float>(rng, 9, -1, 1)));
  const auto before = caller.tensors[0].param;
  REQUIRE_THROWS_MATCHES(caller.step(), std::invalid_argument,
                         test::names({"tensor 0", "exp_avg stored as bfloat16", "storage mode's state is compute",
                                      "nothing was stepped"}));
  CHECK(caller.tensors[0].param == before);
  CHECK(caller.tensors[0].steps == 0);
  caller.options.storage.state = StateStorage::float16;
  REQUIRE_THROWS_MATCHES(caller.step(), std::invalid_argument,
                         test::names({"exp_avg stored as bfloat16", "state is float16"}));
  caller.options.storage = {multopt::Rounding::stochastic, 0, StateStorage::bfloat16};
  REQUIRE_THROWS_MATCHES(caller.step(), std::invalid_argument,
                         test::names({"rounding modes", "Eigen::bfloat16 and Eigen::half parameters"}));
  CHECK(caller.tensors[0].param == before);

  multopt::Adam<double> opt;
  REQUIRE_THROWS_MATCHES(opt.set_storage({multopt::Rounding::master, 0, StateStorage::bfloat16}),
                         std::invalid_argument,
                         test::names({"state storage = bfloat16", "computed in float", "not double"}));
  multopt::StorageMode unknown;
  unknown.state = StateStorage(7);
  REQUIRE_THROWS_MATCHES(multopt::check_storage<float>(unknown), std::invalid_argument,
                         test::names({"state storage", "7"}));
}

TEST_CASE("state_arrays says how each array is stored", "[state_storage]") {
  multopt::bases::Adam::Params adam;
  const auto arrays = multopt::state_arrays<multopt::bases::Adam, Eigen::half>(
      adam, {multopt::Rounding::master, 0, StateStorage::bfloat16}, true);
  REQUIRE(arrays.size() == 4);
  CHECK(arrays[0].storage == StateStorage::bfloat16);  // exp_avg
  CHECK(arrays[1].storage == StateStorage::bfloat16);  // exp_avg_sq
  CHECK(arrays[2].storage == StateStorage::compute);   // master_weights
  CHECK(arrays[3].storage == StateStorage::compute);   // ema
}

TEMPLATE_LIST_TEST_CASE("Optimizer with 16-bit state steps as the public step over 16-bit arrays, bit for bit",
                        "[state_storage]", test::EveryOptimizer<float>) {
  using Opt = TestType;
  using T = Eigen::bfloat16;
  const auto stateful = test::stateful_hyper<typename Opt::Hyper>();
  Opt opt(stateful);
  opt.set_storage({multopt::Rounding::master, 0, StateStorage::bfloat16});
  CallerState<Opt, T> caller;
  caller.groups = {stateful};
  caller.options.storage.state = StateStorage::bfloat16;
  std::mt19937 rng(21);
  std::vector<std::vector<float>> params, grads;
  for (std::size_t size : {std::size_t(5), std::size_t(1100)}) {
    params.push_back(filled<float>(rng, size, -1.0, 1.0));
    grads.emplace_back(size);
    caller.tensors.push_back(test::CallerTensor<typename Opt::BaseType, float, T>::of(params.back(), {}));
    opt.add_params(params.back().data(), grads.back().data(), size);
  }
  for (int step = 0; step < 3; ++step) {
    test::new_gradients(caller, grads, rng);
    opt.step();
    caller.step();
    for (std::size_t k = 0; k < params.size(); ++k) {
      REQUIRE(test::same_bits(params[k], caller.tensors[k].param));
      for (int array = 0; array < Opt::BaseType::array_count; ++array) {
        const auto held = opt.state_values(k, Opt::BaseType::array_names[array]);
        CHECK(test::same_bits(std::vector<float>(held.begin(), held.end()), widened(caller.tensors[k].arrays[array])));
      }
    }
  }
}

TEST_CASE("Optimizer's 16-bit state: read widened, written rounded, stored anew when the mode changes, "
          "saved as values", "[state_storage]") {
  using Opt = multopt::MAdam<float>;
  std::mt19937 rng(6);
  std::vector<float> param = filled<float>(rng, 40, -1.0, 1.0), grad = filled<float>(rng, 40, -1.0, 1.0);
  Opt opt(multopt::arg::lr_out = 0.01);
  opt.add_params(param.data(), grad.data(), param.size());
  opt.step();
  const auto wide = opt.state_values(0, "exp_avg_sq");
  REQUIRE(opt.state(0, "exp_avg_sq") != nullptr);
  CHECK(opt.state_bytes(0) == 2 * 40 * sizeof(float));
  opt.set_storage({multopt::Rounding::master, 0, StateStorage::bfloat16});
  CHECK(opt.state(0, "exp_avg_sq") != nullptr);  // stored anew by the next step
  opt.step();
  CHECK(opt.state_bytes(0) == 2 * 40 * 2);
  REQUIRE_THROWS_MATCHES(opt.state(0, "exp_avg"), std::logic_error,
                         test::names({"tensor 0's exp_avg", "stored as bfloat16", "state_values"}));
  for (float v : opt.state_values(0, "exp_avg")) CHECK(float(Eigen::bfloat16(v)) == v);

  // set_state rounds to nearest even.
  std::vector<float> given(40, 1.0f + 0x1p-12f);
  opt.set_state(0, "exp_avg", given.data(), given.size());
  CHECK(opt.state_values(0, "exp_avg")[7] == 1.0f);

  // A checkpoint holds the values; each optimizer stores them its way.
  std::stringstream saved;
  multopt::save_checkpoint(saved, opt);
  const auto moment = opt.state_values(0, "exp_avg_sq");
  for (const StateStorage storage : {StateStorage::compute, StateStorage::float16, StateStorage::bfloat16}) {
    std::vector<float> other = param;
    Opt loaded(multopt::arg::lr_out = 0.01);
    loaded.add_params(other.data(), grad.data(), other.size());
    loaded.set_storage({multopt::Rounding::master, 0, storage});
    saved.clear();
    saved.seekg(0);
    multopt::load_checkpoint(saved, loaded);
    const auto values = loaded.state_values(0, "exp_avg_sq");
    for (std::size_t i = 0; i < values.size(); ++i)
      CHECK(values[i] == (storage == StateStorage::float16 ? float(Eigen::half(moment[i])) : moment[i]));
    if (storage != StateStorage::bfloat16) continue;
    opt.step();
    loaded.step();
    CHECK(test::same_bits(other, param));  // continues bit-identically
  }

  // make_optimizer's text setting, through AnyOptimizer.
  auto named = multopt::make_optimizer<float>("adam", "hybrid", {{"state_storage", "float16"}});
  named->add_params(param.data(), grad.data(), param.size());
  named->step();
  REQUIRE_THROWS_MATCHES(named->state(0, "exp_avg"), std::logic_error, test::names({"stored as float16"}));
  CHECK(named->storage().state == StateStorage::float16);
}
