// Checkpoints of format version 1, written by the multopt of before version 2 (the trainings of
// fuzz/checkpoint_training.hpp, 3 epochs each, in tests/data/checkpoint_v1), load into today's
// optimizers and resume their runs exactly.
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "checkpoint_training.hpp"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The state arrays of a checkpoint: what follows its header's checksum, less the final checksum.
std::string state_bytes(const std::string& checkpoint) {
  const auto header_length =
      multopt::detail::get<std::uint64_t>(reinterpret_cast<const unsigned char*>(checkpoint.data()) + 12);
  const std::size_t begin = 20 + std::size_t(header_length) + 4;
  return checkpoint.substr(begin, checkpoint.size() - 4 - begin);
}

// Parameters after a run, read back through the snapshot (the checkpoint, then the parameters).
template <class Training>
std::vector<typename Training::S> parameters(const Training& training, std::size_t count) {
  const std::string bytes = training.snapshot();
  std::vector<typename Training::S> values(count);
  std::memcpy(values.data(), bytes.data() + bytes.size() - count * sizeof values[0], count * sizeof values[0]);
  return values;
}

template <class Training>
void resumes(const std::string& name, std::size_t parameter_count) {
  INFO(name);
  const std::string saved = read_file(std::string(MULTOPT_TEST_DATA) + "/checkpoint_v1/" + name + ".ckpt");
  REQUIRE(multopt::detail::get<std::uint32_t>(reinterpret_cast<const unsigned char*>(saved.data()) + 8) == 1);

  // Into an optimizer that has not stepped: every state value comes back bit for bit, and the
  // hyperparameters and positions too (their defaults where version 1 had none).
  Training fresh;
  fresh.load(saved, multopt::LoadOptions{});
  const std::string converted = fresh.save();
  CHECK(state_bytes(converted) == state_bytes(saved));
  Training reference;
  reference.train(3);
  const std::string computed = reference.save();
  CHECK(converted.substr(0, converted.size() - state_bytes(converted).size() - 4) ==
        computed.substr(0, computed.size() - state_bytes(computed).size() - 4));

  // Into the run that wrote it (the same parameters): it continues as the uninterrupted run does,
  // to the rounding of the compiler that wrote the file (whose multiply-adds may be fused
  // differently from this build's).
  Training resumed;
  resumed.train(3);
  resumed.load(saved, multopt::LoadOptions{});
  resumed.train(2);
  reference.train(2);
  const auto expected = parameters(reference, parameter_count), actual = parameters(resumed, parameter_count);
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK(double(actual[i]) == Approx(double(expected[i])).epsilon(1e-5));
  // And its version 2 checkpoint loads back exactly.
  Training again;
  again.load(converted, multopt::LoadOptions{});
  CHECK(again.save() == converted);
}

}  // namespace

TEST_CASE("version 1 checkpoints load and resume exactly", "[checkpoint]") {
  using namespace multopt::fuzz;
  resumes<AdamTraining<float>>("adam_float", 8);
  resumes<AdamTraining<double>>("adam_double", 8);
  resumes<HsgdTraining<float>>("hsgd_float", 13);
  resumes<HsgdTraining<double>>("hsgd_double", 13);
}
