// An embedding table trained with sparse rows, as a framework's embedding layer would hand them
// to multopt (docs/api.md, "Sparse rows"): a matrix-factorisation recommender. The ratings are
// made here: users and items have hidden factors of rank 4, a rating is their product plus
// noise, and items are rated with Zipf-like popularity. The model has one table of user
// embeddings and one of item embeddings; a rating's prediction is the dot product of its two
// rows, and a batch's gradient touches only the rows of the users and items it rates (with
// repeats, which the step sums). The tables and their optimizer state are the framework's
// own arrays (step_tensors, "Bring your own state").
//
// It trains with Adagrad (additive) and SparseAdam with each rule, prints each run's test RMSE
// by epoch and the optimizer's time per step, and checks (exits non-zero otherwise):
//   1. every run fits the ratings: its test RMSE ends below half that of the untrained model
//      (below 0.9 of it with the multiplicative rule, which also must keep every weight's sign);
//   2. rows no batch touched (users who rated nothing) and their state are as they started;
//   3. Adagrad's rows step exactly as its dense step of the whole table with the same gradient
//      (untouched rows have a zero gradient, which leaves them alone): bit-identical tables,
//      at a fraction of the time.
#include <multopt/multopt.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kRank = 4;        // the hidden factors'
constexpr std::size_t kWidth = 16;      // the embeddings'
constexpr std::size_t kBatch = 512;
constexpr std::size_t kIdleUsers = 50;  // the last users rate nothing

struct Flags {
  std::size_t users = 20000, items = 5000, ratings = 1000000;
  int epochs = 5;
};

struct Rating {
  std::int64_t user, item;
  float value;
};

struct Data {
  std::vector<Rating> train, test;
};

Data make_ratings(const Flags& flags) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> user_factors(flags.users * kRank), item_factors(flags.items * kRank);
  for (float& x : user_factors) x = normal(rng);
  for (float& x : item_factors) x = normal(rng);
  std::vector<double> popularity(flags.items);  // Zipf-like: item k by 1 / (k + 10)
  for (std::size_t k = 0; k < flags.items; ++k) popularity[k] = 1.0 / double(k + 10);
  std::discrete_distribution<std::size_t> item_of(popularity.begin(), popularity.end());
  std::uniform_int_distribution<std::size_t> user_of(0, flags.users - kIdleUsers - 1);
  Data data;
  for (std::size_t r = 0; r < flags.ratings; ++r) {
    const std::size_t user = user_of(rng), item = item_of(rng);
    float value = 0.25f * normal(rng);
    for (std::size_t f = 0; f < kRank; ++f) value += 0.5f * user_factors[user * kRank + f] * item_factors[item * kRank + f];
    (r % 10 == 0 ? data.test : data.train).push_back({std::int64_t(user), std::int64_t(item), value});
  }
  return data;
}

// A table as the framework owns it: its values, its optimizer state arrays and step count.
struct Table {
  std::size_t rows;
  std::vector<float> values;
  std::vector<std::vector<float>> state;
  long steps = 0;
  Table(std::size_t rows_, std::mt19937_64& rng) : rows(rows_), values(rows_ * kWidth) {
    std::normal_distribution<float> normal(0.0f, 0.1f);
    for (float& x : values) x = normal(rng);
  }
  const float* row(std::int64_t r) const { return values.data() + std::size_t(r) * kWidth; }
};

struct Model {
  Table users, items;
  explicit Model(const Flags& flags, std::mt19937_64 rng = std::mt19937_64(11))
      : users(flags.users, rng), items(flags.items, rng) {}
  float predict(const Rating& r) const {
    const float *u = users.row(r.user), *v = items.row(r.item);
    return std::inner_product(u, u + kWidth, v, 0.0f);
  }
  double test_rmse(const std::vector<Rating>& test) const {
    double sum = 0.0;
    for (const Rating& r : test) sum += std::pow(double(predict(r) - r.value), 2);
    return std::sqrt(sum / double(test.size()));
  }
};

// One table's part of a batch's gradient of the mean squared error: a row per rating, in the
// batch's order, and the table row it belongs to (repeats included).
struct GradientRows {
  std::vector<std::int64_t> indices;
  std::vector<float> values;
  void clear() {
    indices.clear();
    values.clear();
  }
  void add(std::int64_t row, float scale, const float* other) {
    indices.push_back(row);
    for (std::size_t c = 0; c < kWidth; ++c) values.push_back(scale * other[c]);
  }
  // The same as a dense gradient of the whole table, each row's values summed in the order given.
  void densify(std::vector<float>& dense) const {
    std::fill(dense.begin(), dense.end(), 0.0f);
    for (std::size_t k = 0; k < indices.size(); ++k)
      for (std::size_t c = 0; c < kWidth; ++c) dense[std::size_t(indices[k]) * kWidth + c] += values[k * kWidth + c];
  }
};

// A training run with one base and rule: the framework's optimizer steps its two tables from
// their gradient rows (or, with `dense`, from the whole tables' dense gradients).
template <class Base, class Rule>
struct Run {
  using Hyper = multopt::Hyper<Base, Rule>;
  Model model;
  Hyper hyper;
  bool dense;
  multopt::StepWork<Base, Rule, float> work;
  std::vector<multopt::TensorRefs<Base, float>> refs;
  multopt::StepOptions options;  // one thread: its time per step is the table's figure
  GradientRows user_rows, item_rows;
  std::vector<float> user_dense, item_dense;
  double step_seconds = 0.0;
  std::size_t step_count = 0;

  Run(const Flags& flags, Hyper hyper_, bool dense_ = false)
      : model(flags), hyper(hyper_), dense(dense_), refs(2) {
    options.threading.threads = 1;
    for (Table* table : {&model.users, &model.items}) {
      table->state.resize(std::size_t(Base::array_count));
      for (const multopt::StateArrayInfo& array : multopt::state_arrays<Base, float>(hyper.base))
        table->state[std::size_t(array.index)].assign(table->values.size(), float(array.initial));
    }
    if (dense) {
      user_dense.resize(model.users.values.size());
      item_dense.resize(model.items.values.size());
    }
  }

  void bind(multopt::TensorRefs<Base, float>& ref, Table& table, const GradientRows& rows, std::vector<float>& grad) {
    ref.param = table.values.data();
    ref.size = table.values.size();
    ref.steps = &table.steps;
    for (std::size_t s = 0; s < table.state.size(); ++s)
      ref.state[s] = table.state[s].empty() ? nullptr : table.state[s].data();
    if (dense) {
      rows.densify(grad);
      ref.grad = grad.data();
    } else {
      ref.grad = rows.values.data();
      ref.rows = {rows.indices.data(), rows.indices.size(), kWidth};
    }
  }

  void train_batch(const Rating* batch, std::size_t count) {
    user_rows.clear();
    item_rows.clear();
    for (const Rating* r = batch; r != batch + count; ++r) {
      const float scale = 2.0f * (model.predict(*r) - r->value) / float(count);
      user_rows.add(r->user, scale, model.items.row(r->item));
      item_rows.add(r->item, scale, model.users.row(r->user));
    }
    bind(refs[0], model.users, user_rows, user_dense);
    bind(refs[1], model.items, item_rows, item_dense);
    const auto start = std::chrono::steady_clock::now();
    multopt::step_tensors(refs, {hyper}, options, work);
    step_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++step_count;
  }

  void epoch(const std::vector<Rating>& train, int number) {
    std::vector<std::size_t> order(train.size() / kBatch);
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::shuffle(order.begin(), order.end(), std::mt19937_64(std::uint64_t(number)));
    for (std::size_t b : order) train_batch(&train[b * kBatch], kBatch);
  }
  double microseconds_per_step() const { return 1e6 * step_seconds / double(step_count); }
};

bool failed = false;
void check(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("FAILED: %s\n", what.c_str());
    failed = true;
  }
}

// Trains one run for the flags' epochs, printing its test RMSE after each, and checks it.
// It must bring the test RMSE below `must_reach` times the untrained model's.
template <class Base, class Rule>
Run<Base, Rule> train(const char* name, const Flags& flags, const Data& data, multopt::Hyper<Base, Rule> hyper,
                      double must_reach, bool dense = false) {
  Run<Base, Rule> run(flags, hyper, dense);
  const double start = run.model.test_rmse(data.test);
  std::printf("| %-24s | %.3f |", name, start);
  for (int e = 1; e <= flags.epochs; ++e) {
    run.epoch(data.train, e);
    std::printf(" %.3f |", run.model.test_rmse(data.test));
  }
  std::printf(" %.0f |\n", run.microseconds_per_step());
  check(run.model.test_rmse(data.test) < must_reach * start,
        std::string(name) + ": the test RMSE did not fall below " + std::to_string(must_reach) + " of its start");
  const Model untouched(flags);
  const std::size_t idle_begin = (flags.users - kIdleUsers) * kWidth;
  bool idle_unchanged = std::equal(run.model.users.values.begin() + long(idle_begin), run.model.users.values.end(),
                                   untouched.users.values.begin() + long(idle_begin));
  for (const multopt::StateArrayInfo& array : multopt::state_arrays<Base, float>(hyper.base)) {
    const std::vector<float>& state = run.model.users.state[std::size_t(array.index)];
    idle_unchanged = idle_unchanged && std::all_of(state.begin() + long(idle_begin), state.end(),
                                                   [&](float x) { return x == float(array.initial); });
  }
  check(dense || idle_unchanged, std::string(name) + ": a row no batch touched, or its state, changed");
  return run;
}

Flags read_flags(int argc, char** argv) {
  Flags flags;
  for (int k = 1; k + 1 < argc; k += 2) {
    const std::string flag = argv[k];
    const unsigned long value = std::stoul(argv[k + 1]);
    if (flag == "--users") flags.users = value;
    else if (flag == "--items") flags.items = value;
    else if (flag == "--ratings") flags.ratings = value;
    else if (flag == "--epochs") flags.epochs = int(value);
    else throw std::invalid_argument("unknown flag " + flag + " (--users, --items, --ratings, --epochs)");
  }
  if (argc % 2 == 0) throw std::invalid_argument(std::string("flag ") + argv[argc - 1] + " has no value");
  if (flags.users <= kIdleUsers || flags.items == 0 || flags.ratings < 10 * kBatch || flags.epochs < 1)
    throw std::invalid_argument("needs more than 50 users, an item, 5120 ratings and an epoch");
  return flags;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace multopt::arg;
  using multopt::bases::Adagrad;
  using multopt::bases::SparseAdam;
  namespace rules = multopt::rules;
  const Flags flags = read_flags(argc, argv);
  const Data data = make_ratings(flags);
  std::printf("%zu users x %zu items, embeddings of %zu, %zu training and %zu test ratings, batches of %zu\n\n",
              flags.users, flags.items, kWidth, data.train.size(), data.test.size(), kBatch);
  std::printf("| run | test RMSE at start |");
  for (int e = 1; e <= flags.epochs; ++e) std::printf(" epoch %d |", e);
  std::printf(" µs per step |\n|---|---|");
  for (int e = 0; e <= flags.epochs; ++e) std::printf("---|");
  std::printf("\n");

  using AdagradRun = multopt::Hyper<Adagrad, rules::Additive>;
  const auto rows = train("Adagrad, rows", flags, data, AdagradRun(lr = 0.1), 0.5);
  const auto dense = train("Adagrad, dense", flags, data, AdagradRun(lr = 0.1), 0.5, true);
  train("SparseAdam", flags, data, multopt::Hyper<SparseAdam, rules::Additive>(lr = 0.01), 0.5);
  // A multiplicative step keeps every weight's sign, and the small random start fixes them: the
  // fit is slower and stays poorer, the more so the fewer the epochs.
  const auto signs = train("SparseAdam, multiplicative", flags, data,
                           multopt::Hyper<SparseAdam, rules::Multiplicative>(lr_out = 0.1), 0.9);
  train("SparseAdam, hybrid", flags, data,
        multopt::Hyper<SparseAdam, rules::Hybrid>(lr_out = 0.01, lr = 0.01, g_mix = 0.5), 0.5);

  const Model start(flags);
  const auto same_signs = [](const std::vector<float>& a, const std::vector<float>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), [](float x, float y) { return std::signbit(x) == std::signbit(y); });
  };
  check(same_signs(signs.model.users.values, start.users.values) && same_signs(signs.model.items.values, start.items.values),
        "the multiplicative rule changed a weight's sign");
  check(rows.model.users.values == dense.model.users.values && rows.model.items.values == dense.model.items.values,
        "Adagrad's rows and its dense step differ");
  std::printf("\nAdagrad's rows step %.1fx faster than its dense step of the whole tables\n",
              dense.microseconds_per_step() / rows.microseconds_per_step());
  return failed ? 1 : 0;
}
