// Gradients given as rows (TensorRefs::rows; docs/math.md, "Sparse rows"): the rows a gradient
// touches step, bit for bit, as a dense table of those rows alone steps, and every other row and
// its state stay as they were; for SGD and Adagrad that is the dense step of the gradient made
// dense. Refusals name what they refuse and change nothing; clipping and the non-finite policies
// see the coalesced rows; results are the same at any thread count.
#include "test_support.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace {

using multopt::RowIndices;
using multopt::StepOptions;

constexpr std::size_t table_rows = 12, width = 7;  // 7 floats or doubles: every row ends in a partial packet

// A table of parameters with its state, in the caller's memory, stepped through step_tensors.
template <class Base, class Rule, class P>
struct Table {
  using S = multopt::Arithmetic<P>;
  using Hyper = multopt::Hyper<Base, Rule>;
  std::vector<P> param;
  std::array<std::vector<S>, Base::array_count> arrays;
  std::vector<S> master;
  long steps = 0;
  multopt::contract::Scalars<Base> scalars = multopt::contract::initial_scalars<Base>();
  unsigned new_arrays = 0;
  multopt::StepWork<Base, Rule, P> work;

  Table(std::vector<P> values, const Hyper& h, const multopt::StorageMode& storage = {}) : param(std::move(values)) {
    for (const multopt::StateArrayInfo& info : multopt::state_arrays<Base, P>(h.base, storage)) {
      if (info.index == multopt::master_array) {
        for (P v : param) master.push_back(S(v));
        continue;
      }
      arrays[std::size_t(info.index)].assign(param.size(), S(info.initial));
      new_arrays |= 1u << info.index;
    }
  }

  // One step with gradient `grad`: of every element, or of the rows `rows` given.
  template <class G>
  multopt::StepReport step(const Hyper& h, const std::vector<G>& grad, const RowIndices& rows = {},
                           const StepOptions& options = {}) {
    multopt::TensorRefs<Base, P> refs;
    refs.param = param.data();
    if constexpr (multopt::is_16bit<P>) {
      if constexpr (std::is_same_v<G, float>) refs.grad.wide = grad.data();
      else refs.grad.narrow = grad.data();
    } else {
      refs.grad = grad.data();
    }
    refs.size = param.size();
    for (std::size_t k = 0; k < arrays.size(); ++k) refs.state[k] = arrays[k].empty() ? nullptr : arrays[k].data();
    refs.master = master.empty() ? nullptr : master.data();
    refs.steps = &steps;
    refs.scalars = scalars.data();
    refs.new_arrays = new_arrays;
    refs.rows = rows;
    const multopt::StepReport report = multopt::step_tensors(std::vector{refs}, std::vector{h}, options, work);
    if (report.skipped.empty()) new_arrays = 0;
    return report;
  }

  // The table of `rows` alone, with their state, step count and scalars.
  Table rows_alone(const std::vector<std::size_t>& rows, const Hyper& h) const {
    Table alone({}, h);
    alone.param = pick(param, rows);
    for (std::size_t k = 0; k < arrays.size(); ++k) alone.arrays[k] = pick(arrays[k], rows);
    alone.master = pick(master, rows);
    alone.steps = steps;
    alone.scalars = scalars;
    alone.new_arrays = new_arrays;
    return alone;
  }

  template <class T>
  static std::vector<T> pick(const std::vector<T>& values, const std::vector<std::size_t>& rows) {
    std::vector<T> picked;
    if (values.empty()) return picked;
    for (std::size_t r : rows) picked.insert(picked.end(), values.begin() + long(r * width), values.begin() + long((r + 1) * width));
    return picked;
  }
};

// A batch of rows with repeats: the indices, their values, and the coalesced rows (sorted, each
// once) with their values summed in the order given.
template <class S>
struct Batch {
  std::vector<std::int64_t> indices;
  std::vector<S> values;
  std::vector<std::size_t> rows;
  std::vector<S> summed;

  Batch(std::mt19937& rng, std::size_t count, std::size_t row_limit) {
    std::uniform_int_distribution<std::int64_t> row(0, std::int64_t(row_limit) - 1);
    for (std::size_t k = 0; k < count; ++k) indices.push_back(row(rng));
    values = test::uniform<S>(rng, count * width, -1.0, 1.0);
    std::map<std::size_t, std::vector<S>> sums;
    for (std::size_t k = 0; k < count; ++k) {
      auto [at, fresh] = sums.try_emplace(std::size_t(indices[k]), values.begin() + long(k * width),
                                          values.begin() + long((k + 1) * width));
      if (!fresh)
        for (std::size_t i = 0; i < width; ++i) at->second[i] = at->second[i] + values[k * width + i];
    }
    for (const auto& [r, sum] : sums) {
      rows.push_back(r);
      summed.insert(summed.end(), sum.begin(), sum.end());
    }
  }
  RowIndices given() const { return {indices.data(), indices.size(), width}; }
  // The gradient made dense: the summed rows, zero elsewhere.
  std::vector<S> dense(std::size_t size) const {
    std::vector<S> made(size, S(0));
    for (std::size_t k = 0; k < rows.size(); ++k)
      std::copy_n(summed.begin() + long(k * width), width, made.begin() + long(rows[k] * width));
    return made;
  }
};

template <class Rule, class Hyper>
void set_rates(Hyper& h) {
  if constexpr (Hyper::has("lr")) h.set("lr", 0.01);
  if constexpr (Hyper::has("lr_out")) h.set("lr_out", 0.01);
  if constexpr (Hyper::has("g_mix")) h.set("g_mix", 0.5);
  if constexpr (Hyper::has("momentum")) h.set("momentum", 0.9);
}

template <class T>
bool rows_equal(const std::vector<T>& table, const std::vector<std::size_t>& rows, const std::vector<T>& alone) {
  return test::same_bits(Table<multopt::bases::Sgd, multopt::rules::Additive, double>::pick(table, rows), alone);
}

using Rules = multopt::TypeList<multopt::rules::Additive, multopt::rules::Multiplicative, multopt::rules::Hybrid>;

}  // namespace

TEST_CASE("the rows a gradient touches step as a table of those rows alone, bit for bit; the others stay",
          "[sparse_rows]") {
  std::mt19937 rng(11);
  multopt::for_each_type(multopt::AllBases{}, [&](auto base_tag) {
    using Base = typename decltype(base_tag)::type;
    multopt::for_each_type(Rules{}, [&](auto rule_tag) {
      using Rule = typename decltype(rule_tag)::type;
      using T = Table<Base, Rule, double>;
      INFO(Base::name << " with the " << Rule::name << " rule");
      typename T::Hyper h;
      set_rates<Rule>(h);
      T table(test::uniform<double>(rng, table_rows * width, 0.5, 1.5), h);
      for (int step = 0; step < 4; ++step) {
        INFO("step " << step);
        const Batch<double> batch(rng, 6, table_rows - 3);  // the last rows are never touched
        T alone = table.rows_alone(batch.rows, h);
        const T before = table.rows_alone([] {
          std::vector<std::size_t> all(table_rows);
          for (std::size_t r = 0; r < table_rows; ++r) all[r] = r;
          return all;
        }(), h);
        table.step(h, batch.values, batch.given());
        alone.step(h, batch.summed);
        CHECK(table.steps == alone.steps);
        CHECK(rows_equal(table.param, batch.rows, alone.param));
        for (std::size_t k = 0; k < table.arrays.size(); ++k) CHECK(rows_equal(table.arrays[k], batch.rows, alone.arrays[k]));
        if constexpr (multopt::contract::scalar_count<Base> > 0) CHECK(table.scalars == alone.scalars);
        for (std::size_t r = 0; r < table_rows; ++r) {
          if (std::binary_search(batch.rows.begin(), batch.rows.end(), r)) continue;
          CHECK(rows_equal(table.param, {r}, T::pick(before.param, {r})));
          for (std::size_t k = 0; k < table.arrays.size(); ++k)
            CHECK(rows_equal(table.arrays[k], {r}, T::pick(before.arrays[k], {r})));
        }
      }
    });
  });
}

TEST_CASE("SGD and Adagrad step rows as the gradient made dense, bit for bit, 16-bit parameters too",
          "[sparse_rows]") {
  std::mt19937 rng(12);
  const auto check = [&](auto base_tag, auto rule_tag, auto param_tag, multopt::StorageMode storage) {
    using Base = typename decltype(base_tag)::type;
    using Rule = typename decltype(rule_tag)::type;
    using P = typename decltype(param_tag)::type;
    using T = Table<Base, Rule, P>;
    INFO(Base::name << " with the " << Rule::name << " rule, " << sizeof(P) << "-byte parameters");
    typename T::Hyper h;
    set_rates<Rule>(h);
    if constexpr (std::is_same_v<Base, multopt::bases::Sgd>) h.set("momentum", 0.0);  // its buffer steps every row
    std::vector<P> values;
    for (double v : test::uniform<double>(rng, table_rows * width, 0.5, 1.5)) values.push_back(P(v));
    T by_rows(values, h, storage), dense(values, h, storage);
    StepOptions options;
    options.storage = storage;
    for (int step = 0; step < 4; ++step) {
      const Batch<float> batch(rng, 5, table_rows);
      by_rows.step(h, batch.values, batch.given(), options);
      dense.step(h, batch.dense(values.size()), {}, options);
      CHECK(test::same_bits(by_rows.param, dense.param));
      CHECK(test::same_bits(by_rows.master, dense.master));
      for (std::size_t k = 0; k < by_rows.arrays.size(); ++k) CHECK(test::same_bits(by_rows.arrays[k], dense.arrays[k]));
    }
  };
  multopt::for_each_type(multopt::TypeList<multopt::bases::Sgd, multopt::bases::Adagrad>{}, [&](auto base) {
    multopt::for_each_type(Rules{}, [&](auto rule) {
      check(base, rule, std::common_type<float>{}, {});
      multopt::StorageMode master, stochastic;
      stochastic.rounding = multopt::Rounding::stochastic;
      stochastic.seed = 5;
      check(base, rule, std::common_type<Eigen::bfloat16>{}, master);
      check(base, rule, std::common_type<Eigen::bfloat16>{}, stochastic);
    });
  });
}

TEST_CASE("rows refused, with what is wrong, change nothing", "[sparse_rows]") {
  using T = Table<multopt::bases::SparseAdam, multopt::rules::Hybrid, float>;
  std::mt19937 rng(13);
  T::Hyper h;
  T table(test::uniform<float>(rng, table_rows * width, 0.5, 1.5), h);
  const Batch<float> first(rng, 4, table_rows);
  table.step(h, first.values, first.given());
  const std::vector<float> param = table.param, exp_avg = table.arrays[0];
  const std::vector<float> values(2 * width, 0.5f);
  const auto refused = [&](const RowIndices& rows, const T::Hyper& settings, const std::string& message) {
    CHECK_THROWS_WITH(table.step(settings, values, rows), message);
    CHECK(test::same_bits(table.param, param));
    CHECK(test::same_bits(table.arrays[0], exp_avg));
    CHECK(table.steps == 1);
  };
  const std::vector<std::int64_t> negative = {3, -1}, beyond = {12, 0};
  refused({negative.data(), 2, width}, h,
          "multopt: tensor 0 has a gradient row index -1 (entry 1) outside [0, 12); nothing was stepped");
  refused({beyond.data(), 2, width}, h,
          "multopt: tensor 0 has a gradient row index 12 (entry 0) outside [0, 12); nothing was stepped");
  refused({negative.data(), 1, 5}, h,
          "multopt: tensor 0 has 84 elements, which are no whole number of rows of 5; nothing was stepped");
  refused({nullptr, 2, width}, h,
          "multopt: tensor 0 has 2 gradient rows and no row indices (a null pointer); nothing was stepped");
  for (const char* decay : {"weight_decay", "decoupled_weight_decay"}) {
    T::Hyper decaying = h;
    decaying.set(decay, 0.01);
    refused({beyond.data() + 1, 1, width}, decaying,
            "multopt: tensor 0 has a gradient given as rows, and " + std::string(decay) +
                " = 0.010000 (group 0) would change every row; nothing was stepped");
  }
}

TEST_CASE("rows step the same at any thread count, and an empty batch counts a step", "[sparse_rows]") {
  using T = Table<multopt::bases::Adagrad, multopt::rules::Multiplicative, float>;
  std::mt19937 rng(14);
  T::Hyper h;
  h.set("lr_out", 0.01);
  const std::vector<float> values = test::uniform<float>(rng, 4096 * width, 0.5, 1.5);
  T one(values, h), several(values, h);
  StepOptions threaded;
  threaded.threading = test::threaded(2, 64);
  for (int step = 0; step < 3; ++step) {
    const Batch<float> batch(rng, 3000, 4096);
    one.step(h, batch.values, batch.given());
    several.step(h, batch.values, batch.given(), threaded);
  }
  CHECK(test::same_bits(one.param, several.param));
  CHECK(test::same_bits(one.arrays[0], several.arrays[0]));
  const std::vector<float> param = one.param;
  one.step(h, std::vector<float>{}, RowIndices{nullptr, 0, width});
  CHECK(one.steps == 4);
  CHECK(test::same_bits(one.param, param));
}

TEST_CASE("clipping and the non-finite policies see the coalesced rows", "[sparse_rows]") {
  using T = Table<multopt::bases::SparseAdam, multopt::rules::Additive, double>;
  std::mt19937 rng(15);
  T::Hyper h;
  const std::vector<double> values = test::uniform<double>(rng, table_rows * width, 0.5, 1.5);
  const Batch<double> batch(rng, 9, table_rows);
  StepOptions clipping;
  clipping.max_grad_norm = 0.5;
  T table(values, h);
  T alone = table.rows_alone(batch.rows, h);
  const multopt::StepReport report = table.step(h, batch.values, batch.given(), clipping);
  double squares = 0;
  for (double v : batch.summed) squares += v * v;
  CHECK(report.grad_norm == Approx(std::sqrt(squares)).epsilon(1e-14));
  CHECK(alone.step(h, batch.summed, {}, clipping).grad_norm == report.grad_norm);
  CHECK(rows_equal(table.param, batch.rows, alone.param));

  std::vector<double> poisoned = batch.values;
  const std::size_t entry = 4, element = 3;
  poisoned[entry * width + element] = std::numeric_limits<double>::infinity();
  const std::vector<double> param = table.param;
  StepOptions skip, throwing;
  skip.non_finite_policy = multopt::NonFinitePolicy::skip;
  throwing.non_finite_policy = multopt::NonFinitePolicy::throw_error;
  CHECK(table.step(h, poisoned, batch.given(), skip).skipped == std::vector<std::size_t>{0});
  CHECK(test::same_bits(table.param, param));
  CHECK(table.steps == 1);
  // The element of the table whose gradient is not finite: its row's, at the same place.
  const std::size_t table_element = std::size_t(batch.indices[entry]) * width + element;
  try {
    table.step(h, poisoned, batch.given(), throwing);
    FAIL("no NonFiniteGradient");
  } catch (const multopt::NonFiniteGradient& e) {
    CHECK(e.tensor() == 0);
    CHECK(e.index() == table_element);
  }
  CHECK(test::same_bits(table.param, param));
}
