// The libtorch adapter (include/multopt/adapters/torch.hpp): TorchOptimizer trains a torch::nn
// model as torch::optim::Adam does (additive rule) and as docs/math.md's formulas written here
// in libtorch ops do (multiplicative rule), follows torch's StepLR, keeps its state in
// torch::optim's state and saves and loads it through torch's serialization, steps strided,
// complex and bf16 parameters (through fp32 master weights) and sparse embedding gradients,
// keeps a moving average of the weights, unscales loss-scaled gradients, stores its state in
// bf16 where told, and refuses what it cannot step.
#include <multopt/adapters/torch.hpp>

#include <catch2/catch.hpp>
#include <torch/nn.h>
#include <torch/optim.h>
#include <torch/serialize.h>

#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <vector>

using multopt::adapters::TorchOptimizer;

namespace {

torch::nn::Sequential model(torch::Dtype dtype) {
  torch::manual_seed(0);
  torch::nn::Sequential net(torch::nn::Linear(5, 7), torch::nn::Tanh(), torch::nn::Linear(7, 3));
  net->to(dtype);
  return net;
}

// Steps `opt` over `steps` batches (the k-th batch is the same for every model), then the
// parameters.
template <class Opt>
std::vector<torch::Tensor> train(torch::nn::Sequential& net, Opt& opt, int steps, torch::Dtype dtype, int first = 0,
                                 torch::optim::StepLR* scheduler = nullptr) {
  for (int k = first; k < first + steps; ++k) {
    torch::manual_seed(uint64_t(1000 + k));
    const auto x = torch::randn({16, 5}, torch::dtype(dtype));
    const auto y = torch::randn({16, 3}, torch::dtype(dtype));
    opt.zero_grad();
    torch::mse_loss(net->forward(x), y).backward();
    opt.step();
    if (scheduler) scheduler->step();
  }
  std::vector<torch::Tensor> params;
  for (const auto& p : net->parameters()) params.push_back(p.detach().clone());
  return params;
}

// The largest difference relative to the largest magnitude of `expected`.
double relative_difference(const std::vector<torch::Tensor>& actual, const std::vector<torch::Tensor>& expected) {
  double worst = 0.0;
  for (std::size_t k = 0; k < actual.size(); ++k) {
    const double scale = expected[k].abs().max().item<double>();
    worst = std::max(worst, (actual[k] - expected[k]).abs().max().item<double>() / scale);
  }
  return worst;
}

// docs/math.md's Adam with the multiplicative rule, one libtorch op per formula line.
struct ReferenceMAdam {
  std::vector<torch::Tensor> params, m, v;
  double lr_in, lr_out, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  long t = 0;
  ReferenceMAdam(std::vector<torch::Tensor> p, double in, double out) : params(std::move(p)), lr_in(in), lr_out(out) {
    for (const auto& theta : params) {
      m.push_back(torch::zeros_like(theta));
      v.push_back(torch::zeros_like(theta));
    }
  }
  void zero_grad() {
    for (auto& theta : params) theta.mutable_grad() = torch::Tensor();
  }
  void step() {
    torch::NoGradGuard no_grad;
    ++t;
    for (std::size_t k = 0; k < params.size(); ++k) {
      const auto g = params[k].grad();
      m[k] = beta1 * m[k] + (1 - beta1) * g;
      v[k] = beta2 * v[k] + (1 - beta2) * g * g;
      const auto denom = v[k].sqrt() / std::sqrt(1 - std::pow(beta2, double(t))) + eps;
      const auto d = m[k] / denom;
      const double s = 1 / (1 - std::pow(beta1, double(t)));
      params[k] -= s * lr_out * params[k].abs() * torch::tanh(lr_in * d);
    }
  }
};

}  // namespace

TEST_CASE("TorchOptimizer with the additive rule trains a model as torch::optim::Adam", "[torch]") {
  for (const auto& [dtype, tolerance] : {std::pair{torch::kFloat64, 1e-12}, std::pair{torch::kFloat32, 1e-5}}) {
    auto mine = model(dtype), theirs = model(dtype);
    TorchOptimizer opt(mine->parameters(), "adam", "additive", {{"lr", 0.01}, {"weight_decay", 0.01}});
    torch::optim::Adam adam(theirs->parameters(), torch::optim::AdamOptions(0.01).weight_decay(0.01));
    const auto a = train(mine, opt, 50, dtype);
    const auto b = train(theirs, adam, 50, dtype);
    CHECK(relative_difference(a, b) <= tolerance);
    CHECK(a.size() == 4);
  }
}

TEST_CASE("TorchOptimizer with the multiplicative rule is docs/math.md's MAdam", "[torch]") {
  auto mine = model(torch::kFloat64), theirs = model(torch::kFloat64);
  TorchOptimizer opt(mine->parameters(), "adam", "multiplicative", {{"lr_in", 0.7}, {"lr_out", 0.02}});
  ReferenceMAdam reference(theirs->parameters(), 0.7, 0.02);
  CHECK(relative_difference(train(mine, opt, 50, torch::kFloat64), train(theirs, reference, 50, torch::kFloat64)) <=
        1e-10);
}

TEST_CASE("torch's StepLR moves TorchOptimizer's lr as torch::optim::Adam's", "[torch]") {
  auto mine = model(torch::kFloat64), theirs = model(torch::kFloat64);
  TorchOptimizer opt(mine->parameters(), "adam", "additive", {{"lr", 0.01}});
  torch::optim::Adam adam(theirs->parameters(), torch::optim::AdamOptions(0.01));
  torch::optim::StepLR mine_schedule(opt, 3, 0.5), their_schedule(adam, 3, 0.5);
  const auto a = train(mine, opt, 12, torch::kFloat64, 0, &mine_schedule);
  const auto b = train(theirs, adam, 12, torch::kFloat64, 0, &their_schedule);
  CHECK(opt.param_groups()[0].options().get_lr() == adam.param_groups()[0].options().get_lr());
  CHECK(opt.param_groups()[0].options().get_lr() < 0.01 / 4);
  CHECK(relative_difference(a, b) <= 1e-12);
}

TEST_CASE("TorchOptimizer saves and loads through torch's serialization and continues bit-identically", "[torch]") {
  auto net = model(torch::kFloat64);
  TorchOptimizer opt(net->parameters(), "adam", "hybrid", {{"lr_out", 0.01}, {"lr", 0.01}, {"g", 0.5}});
  train(net, opt, 5, torch::kFloat64);
  std::stringstream saved_model, saved_opt;
  torch::save(net, saved_model);
  torch::save(opt, saved_opt);
  const auto continued = train(net, opt, 5, torch::kFloat64, 5);

  auto resumed_net = model(torch::kFloat64);
  torch::load(resumed_net, saved_model);
  TorchOptimizer resumed(resumed_net->parameters(), "adam", "hybrid", {{"lr_out", 0.5}, {"lr", 0.5}, {"g", 0.1}});
  torch::load(resumed, saved_opt);
  const auto again = train(resumed_net, resumed, 5, torch::kFloat64, 5);
  for (std::size_t k = 0; k < continued.size(); ++k) CHECK(torch::equal(continued[k], again[k]));
}

TEST_CASE("TorchOptimizer steps strided and complex parameters as torch::optim::SGD", "[torch]") {
  auto strided = torch::arange(12, torch::kFloat64).reshape({4, 3}).t().requires_grad_();
  auto complex = torch::arange(3, torch::kFloat64).to(torch::kComplexDouble).requires_grad_();
  auto strided_ref = strided.detach().clone().requires_grad_(), complex_ref = complex.detach().clone().requires_grad_();
  TorchOptimizer opt(std::vector<torch::Tensor>{strided, complex}, "sgd", "additive", {{"lr", 0.1}, {"momentum", 0.9}});
  torch::optim::SGD ref(std::vector<torch::Tensor>{strided_ref, complex_ref}, torch::optim::SGDOptions(0.1).momentum(0.9));
  for (int k = 0; k < 3; ++k) {
    strided.mutable_grad() = torch::full({4, 3}, 1.0 + k, torch::kFloat64).t();
    complex.mutable_grad() = torch::full({3}, c10::complex<double>(1.0, -k), torch::kComplexDouble);
    strided_ref.mutable_grad() = strided.grad().clone();
    complex_ref.mutable_grad() = complex.grad().clone();
    opt.step();
    ref.step();
  }
  CHECK(!strided.is_contiguous());
  CHECK(torch::allclose(strided, strided_ref, 1e-14, 0));
  CHECK(torch::allclose(complex, complex_ref, 1e-14, 0));
}

TEST_CASE("TorchOptimizer refuses what it cannot step, changing nothing", "[torch]") {
  auto kept = torch::ones({3}, torch::kFloat64).requires_grad_();
  auto replaced = torch::ones({5}, torch::kFloat64).requires_grad_();
  TorchOptimizer opt(std::vector<torch::Tensor>{kept, replaced}, "adam", "additive", {{"lr", 0.1}});
  kept.mutable_grad() = torch::ones({3}, torch::kFloat64);
  replaced.mutable_grad() = torch::ones({5}, torch::kFloat64);
  opt.step();
  replaced.set_data(torch::zeros({2}, torch::kFloat64));
  replaced.mutable_grad() = torch::ones({2}, torch::kFloat64);
  const auto kept_before = kept.detach().clone();
  CHECK_THROWS_WITH(opt.step(), Catch::Contains("parameter 1 of group 0 has 2 elements but its state 'exp_avg' has 5"));
  CHECK(torch::equal(kept, kept_before));
  CHECK(opt.state_of(kept)->entries.at("step").item<double>() == 1.0);
  CHECK(replaced.count_nonzero().item<long>() == 0);
  CHECK_THROWS_WITH(TorchOptimizer(std::vector<torch::Tensor>{kept}, "adam", "multiplicative", {{"lr_out", -1.0}}),
                    Catch::Contains("lr_out"));
  CHECK_THROWS_WITH(TorchOptimizer(std::vector<torch::Tensor>{kept}, "adam", "additive", {}, {{"rounding", "nearest"}}),
                    Catch::Contains("rounding = 'nearest' is for bfloat16 and float16 parameters"));
}

TEST_CASE("TorchOptimizer's state is torch's, and a load that does not fit changes nothing", "[torch]") {
  auto net = model(torch::kFloat64);
  TorchOptimizer opt(net->parameters(), "adam", "multiplicative", {{"lr_out", 0.01}, {"beta2", 0.99}});
  train(net, opt, 3, torch::kFloat64);
  CHECK(opt.state().size() == net->parameters().size());
  const auto* first = opt.state_of(net->parameters()[0]);
  REQUIRE(first);
  CHECK(first->entries.at("step").item<double>() == 3.0);
  CHECK(first->entries.at("exp_avg").sizes() == net->parameters()[0].sizes());
  std::stringstream saved;
  torch::save(opt, saved);

  auto other = torch::nn::Sequential(torch::nn::Linear(5, 4), torch::nn::Tanh(), torch::nn::Linear(4, 3));
  other->to(torch::kFloat64);
  TorchOptimizer smaller(other->parameters(), "adam", "multiplicative", {{"lr_out", 0.5}, {"beta2", 0.9}});
  train(other, smaller, 1, torch::kFloat64);
  const auto before = smaller.state_of(other->parameters()[0])->entries.at("exp_avg").clone();
  CHECK_THROWS_WITH(torch::load(smaller, saved), Catch::Contains("elements but its state 'exp_avg' has"));
  CHECK(smaller.param_groups()[0].options().get_lr() == 0.5);
  CHECK(static_cast<const multopt::adapters::TorchOptions&>(smaller.param_groups()[0].options()).settings() ==
        multopt::NamedValues{{"lr_out", 0.5}, {"beta2", 0.9}});
  CHECK(torch::equal(smaller.state_of(other->parameters()[0])->entries.at("exp_avg"), before));

  // A step count that cannot advance is refused before any parameter changes.
  opt.state_of(net->parameters()[1])->entries.at("step").fill_(double(multopt::max_step_count));
  const auto params_before = net->parameters()[0].detach().clone();
  CHECK_THROWS_WITH(train(net, opt, 1, torch::kFloat64, 9), Catch::Contains("has step"));
  CHECK(torch::equal(net->parameters()[0], params_before));
}

TEST_CASE("TorchOptimizer steps bf16 parameters through fp32 master weights, saved and loaded with its state", "[torch]") {
  // The float32 run from the rounded start, with the bf16 gradients widened, is the master
  // weights bit for bit.
  auto narrow = model(torch::kBFloat16), wide = model(torch::kBFloat16);
  wide->to(torch::kFloat32);
  TorchOptimizer opt(narrow->parameters(), "adam", "hybrid", {{"lr_out", 0.01}, {"lr", 0.01}, {"g", 0.5}});
  TorchOptimizer opt32(wide->parameters(), "adam", "hybrid", {{"lr_out", 0.01}, {"lr", 0.01}, {"g", 0.5}});
  const auto narrow_params = narrow->parameters(), wide_params = wide->parameters();
  for (int k = 0; k < 20; ++k) {
    opt.zero_grad();
    torch::manual_seed(uint64_t(1000 + k));
    const auto x = torch::randn({16, 5}).to(torch::kBFloat16), y = torch::randn({16, 3}).to(torch::kBFloat16);
    (narrow->forward(x) - y).square().mean().backward();  // torch 1.13 has no bf16 mse_loss on the CPU
    for (std::size_t p = 0; p < wide_params.size(); ++p) wide_params[p].mutable_grad() = narrow_params[p].grad().to(torch::kFloat32);
    opt.step();
    opt32.step();
  }
  for (std::size_t p = 0; p < wide_params.size(); ++p) {
    const auto master = opt.state_of(narrow_params[p])->entries.at("master_weights");
    CHECK(torch::equal(master, wide_params[p]));
    CHECK(torch::equal(narrow_params[p], master.to(torch::kBFloat16)));
  }

  std::stringstream saved;
  torch::save(opt, saved);
  auto resumed_net = model(torch::kBFloat16);
  TorchOptimizer resumed(resumed_net->parameters(), "adam", "hybrid", {{"lr_out", 0.01}, {"lr", 0.01}, {"g", 0.5}});
  torch::load(resumed, saved);
  const auto* loaded = resumed.state_of(resumed_net->parameters()[0]);
  CHECK(torch::equal(loaded->entries.at("master_weights"), opt.state_of(narrow_params[0])->entries.at("master_weights")));
  CHECK(loaded->entries.at("exp_avg").scalar_type() == torch::kFloat32);
  CHECK_THROWS_WITH(TorchOptimizer(narrow->parameters(), "adam", "additive", {}, {{"rounding", "up"}}),
                    Catch::Contains("rounding = 'up' is unknown"));
}

namespace {

// A bag of embeddings, summed, then a linear layer: with `sparse`, the embedding's gradient is
// sparse rows (with repeats within a batch), as nn::Embedding(sparse=true) makes them.
struct Bag : torch::nn::Module {
  torch::nn::Embedding embedding{nullptr};
  torch::nn::Linear out{nullptr};
  explicit Bag(bool sparse) {
    torch::manual_seed(0);
    embedding = register_module("embedding", torch::nn::Embedding(torch::nn::EmbeddingOptions(50, 4).sparse(sparse)));
    out = register_module("out", torch::nn::Linear(4, 1));
    to(torch::kFloat64);
  }
  torch::Tensor forward(const torch::Tensor& tokens) { return out->forward(embedding->forward(tokens).sum(1)); }
};

template <class Opt>
void train_bag(Bag& bag, Opt& opt, int steps) {
  for (int k = 0; k < steps; ++k) {
    torch::manual_seed(uint64_t(2000 + k));
    const auto tokens = torch::randint(0, 40, {8, 3});  // rows 40..49 never looked up
    const auto y = torch::randn({8, 1}, torch::kFloat64);
    opt.zero_grad();
    torch::mse_loss(bag.forward(tokens), y).backward();
    opt.step();
  }
}

}  // namespace

TEST_CASE("TorchOptimizer steps sparse embedding gradients as torch::optim steps their dense form", "[torch]") {
  // SGD without momentum and Adagrad leave a row whose gradient is zero as it is: their sparse
  // step is their dense step of the densified gradient, which torch::optim takes.
  for (const auto& [base, lr] : {std::pair{"sgd", 0.1}, std::pair{"adagrad", 0.1}}) {
    Bag sparse(true), dense(false);
    TorchOptimizer opt(sparse.parameters(), base, "additive", {{"lr", lr}});
    if (std::string(base) == "sgd") {
      torch::optim::SGD ref(dense.parameters(), torch::optim::SGDOptions(lr));
      train_bag(dense, ref, 20);
    } else {
      torch::optim::Adagrad ref(dense.parameters(), torch::optim::AdagradOptions(lr));
      train_bag(dense, ref, 20);
    }
    train_bag(sparse, opt, 20);
    CHECK(sparse.embedding->weight.grad().is_sparse());
    CHECK(relative_difference(sparse.parameters(), dense.parameters()) <= 1e-13);
    CHECK(opt.state_of(sparse.embedding->weight)->entries.at("step").item<double>() == 20.0);
  }
}

TEST_CASE("TorchOptimizer's SparseAdam steps the looked-up rows alone, and refuses what torch refuses", "[torch]") {
  Bag bag(true);
  const auto start = bag.embedding->weight.detach().clone();
  TorchOptimizer opt(std::vector<torch::Tensor>{bag.embedding->weight}, "sparse_adam", "multiplicative", {{"lr_out", 0.01}});
  train_bag(bag, opt, 5);
  const auto exp_avg = opt.state_of(bag.embedding->weight)->entries.at("exp_avg");
  CHECK(torch::equal(bag.embedding->weight.slice(0, 40), start.slice(0, 40)));
  CHECK(exp_avg.slice(0, 40).count_nonzero().item<long>() == 0);
  CHECK(exp_avg.slice(0, 0, 40).count_nonzero().item<long>() > 0);
  CHECK(!torch::equal(bag.embedding->weight.slice(0, 0, 40), start.slice(0, 0, 40)));
  // A multiplicative step keeps signs.
  CHECK(torch::equal(bag.embedding->weight.sign(), start.sign()));

  Bag other(true);
  TorchOptimizer adam(other.parameters(), "adam", "additive", {{"lr", 0.01}});
  const auto before = other.embedding->weight.detach().clone();
  CHECK_THROWS_WITH(train_bag(other, adam, 1), Catch::Contains("which adam does not step"));
  CHECK(torch::equal(other.embedding->weight, before));
  TorchOptimizer dense_sparse_adam(other.out->parameters(), "sparse_adam", "additive", {{"lr", 0.01}});
  CHECK_THROWS_WITH(train_bag(other, dense_sparse_adam, 1), Catch::Contains("which sparse_adam does not step"));
}

TEST_CASE("TorchOptimizer keeps a moving average of the weights in its state, saved and loaded with it", "[torch]") {
  const double decay = 0.8;
  auto net = model(torch::kFloat64);
  TorchOptimizer opt(net->parameters(), "adam", "multiplicative", {{"lr_out", 0.02}}, {{"ema_decay", "0.8"}});
  std::vector<torch::Tensor> average;
  for (int k = 0; k < 5; ++k) {
    const auto params = train(net, opt, 1, torch::kFloat64, k);
    for (std::size_t p = 0; p < params.size(); ++p) {
      if (k == 0) average.push_back(params[p]);  // the parameter after its first step
      else average[p] = decay * average[p] + (1 - decay) * params[p];
    }
  }
  const auto params = net->parameters();
  for (std::size_t p = 0; p < params.size(); ++p) {
    const torch::Tensor& ema = opt.state_of(params[p])->entries.at("ema");
    CHECK(ema.scalar_type() == torch::kFloat64);
    CHECK((ema - average[p]).abs().max().item<double>() <= 4 * 0x1p-52 * average[p].abs().max().item<double>());
  }
  std::stringstream saved_model, saved_opt;
  torch::save(net, saved_model);
  torch::save(opt, saved_opt);
  train(net, opt, 3, torch::kFloat64, 5);
  auto resumed_net = model(torch::kFloat64);
  torch::load(resumed_net, saved_model);
  TorchOptimizer resumed(resumed_net->parameters(), "adam", "multiplicative", {{"lr_out", 0.02}}, {{"ema_decay", "0.8"}});
  torch::load(resumed, saved_opt);
  train(resumed_net, resumed, 3, torch::kFloat64, 5);
  const auto again = resumed_net->parameters();
  for (std::size_t p = 0; p < params.size(); ++p)
    CHECK(torch::equal(opt.state_of(params[p])->entries.at("ema"), resumed.state_of(again[p])->entries.at("ema")));
  CHECK_THROWS_WITH(TorchOptimizer(net->parameters(), "adam", "additive", {}, {{"ema_decay", "1"}}),
                    Catch::Contains("ema_decay = 1 is invalid"));
  CHECK_THROWS_WITH(TorchOptimizer(net->parameters(), "adam", "additive", {}, {{"ema", "0.5"}}),
                    Catch::Contains("'ema' is none of TorchOptimizer's own settings"));
}

TEST_CASE("TorchOptimizer unscales loss-scaled gradients and skips a step with an infinite one", "[torch]") {
  auto scaled = model(torch::kFloat32), plain = model(torch::kFloat32);
  TorchOptimizer scaled_opt(scaled->parameters(), "adam", "additive", {{"lr", 0.01}});
  TorchOptimizer plain_opt(plain->parameters(), "adam", "additive", {{"lr", 0.01}});
  scaled_opt.set_grad_scale(1024.0);  // a power of two: the unscaled gradients are the plain ones
  for (int k = 0; k < 3; ++k) {
    torch::manual_seed(uint64_t(1000 + k));
    const auto x = torch::randn({16, 5});
    scaled_opt.zero_grad();
    plain_opt.zero_grad();
    (1024.0 * scaled->forward(x).square().mean()).backward();
    plain->forward(x).square().mean().backward();
    scaled_opt.step();
    plain_opt.step();
    CHECK_FALSE(scaled_opt.skipped());
  }
  const auto params = scaled->parameters(), others = plain->parameters();
  for (std::size_t p = 0; p < params.size(); ++p) CHECK(torch::equal(params[p], others[p]));
  {
    torch::NoGradGuard no_grad;
    params[1].mutable_grad()[0] = std::numeric_limits<float>::infinity();
  }
  std::vector<torch::Tensor> before;
  for (const auto& p : params) before.push_back(p.detach().clone());
  const auto step_count = scaled_opt.state_of(params[0])->entries.at("step").item<double>();
  scaled_opt.step();
  CHECK(scaled_opt.skipped());
  for (std::size_t p = 0; p < params.size(); ++p) CHECK(torch::equal(params[p], before[p]));
  CHECK(scaled_opt.state_of(params[0])->entries.at("step").item<double>() == step_count);
  CHECK_THROWS_WITH(scaled_opt.set_grad_scale(0.0), Catch::Contains("grad_scale = 0 is invalid"));
  scaled_opt.step();  // the refused scale changed nothing: the infinite gradient skips again
  CHECK(scaled_opt.skipped());
  scaled_opt.set_grad_scale(std::nullopt);
  scaled_opt.step();  // gradients read as they are: the infinity reaches the parameter
  CHECK_FALSE(scaled_opt.skipped());
  CHECK(params[1].isnan().any().item<bool>());
}

TEST_CASE("TorchOptimizer stores its state in bf16 where told, saved and loaded as it is", "[torch]") {
  // Each step is the float32 step of the widened state, its state rounded to nearest even.
  auto narrow = model(torch::kFloat32), wide = model(torch::kFloat32);
  TorchOptimizer opt(narrow->parameters(), "adam", "multiplicative", {{"lr_out", 0.01}},
                     {{"state_storage", "bfloat16"}});
  TorchOptimizer opt32(wide->parameters(), "adam", "multiplicative", {{"lr_out", 0.01}});
  const auto narrow_params = narrow->parameters(), wide_params = wide->parameters();
  train(narrow, opt, 1, torch::kFloat32);
  train(wide, opt32, 1, torch::kFloat32);
  for (int k = 1; k < 4; ++k) {
    for (std::size_t p = 0; p < wide_params.size(); ++p) {  // the float32 run starts from the bf16 one's
      torch::NoGradGuard no_grad;
      wide_params[p].copy_(narrow_params[p]);
      for (const auto& [name, value] : opt.state_of(narrow_params[p])->entries)
        opt32.state_of(wide_params[p])->entries.at(name).copy_(value);  // widened exactly
    }
    train(narrow, opt, 1, torch::kFloat32, k);
    train(wide, opt32, 1, torch::kFloat32, k);
    for (std::size_t p = 0; p < wide_params.size(); ++p) {
      CHECK(torch::equal(narrow_params[p], wide_params[p]));
      for (const char* name : {"exp_avg", "exp_avg_sq"}) {
        const auto stored = opt.state_of(narrow_params[p])->entries.at(name);
        CHECK(stored.scalar_type() == torch::kBFloat16);
        CHECK(torch::equal(stored, opt32.state_of(wide_params[p])->entries.at(name).to(torch::kBFloat16)));
      }
    }
  }
  std::stringstream saved;
  torch::save(opt, saved);
  auto resumed_net = model(torch::kFloat32);
  TorchOptimizer resumed(resumed_net->parameters(), "adam", "multiplicative", {{"lr_out", 0.01}},
                         {{"state_storage", "bfloat16"}});
  torch::load(resumed, saved);
  CHECK(torch::equal(resumed.state_of(resumed_net->parameters()[0])->entries.at("exp_avg"),
                     opt.state_of(narrow_params[0])->entries.at("exp_avg")));
  auto wide_net = model(torch::kFloat64);
  TorchOptimizer opt64(wide_net->parameters(), "adam", "additive", {}, {{"state_storage", "bfloat16"}});
  const auto before = wide_net->parameters()[0].detach().clone();
  CHECK_THROWS_WITH(train(wide_net, opt64, 1, torch::kFloat64),
                    Catch::Contains("state_storage = bfloat16 is for real parameters computed in float"));
  CHECK(torch::equal(wide_net->parameters()[0], before));
  CHECK(opt64.state().empty());
  CHECK_THROWS_WITH(TorchOptimizer(wide_net->parameters(), "adam", "additive", {}, {{"state_storage", "bf16"}}),
                    Catch::Contains("state_storage = 'bf16' is unknown"));
}
