// make_checkpoint_seeds DIR: writes the checkpoint fuzzer's seed corpus (fuzz/corpus/checkpoint)
// into DIR: checkpoints of the trainings in checkpoint_training.hpp, each in float and double,
// so that the seeds reach every check that a fitting checkpoint passes, narrowing and widening
// included.
#include <fstream>
#include <iostream>
#include <string>

#include "checkpoint_training.hpp"

namespace {

template <class T>
bool write_seed(const std::string& dir, const std::string& name) {
  T training;
  training.train(3);
  std::ofstream out(dir + "/" + name + ".ckpt", std::ios::binary);
  out << training.save();
  return bool(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_checkpoint_seeds DIR\n";
    return 2;
  }
  using namespace multopt::fuzz;
  const std::string dir = argv[1];
  const bool written = write_seed<AdamTraining<float>>(dir, "adam_float") &&
                       write_seed<AdamTraining<double>>(dir, "adam_double") &&
                       write_seed<HsgdTraining<float>>(dir, "hsgd_float") &&
                       write_seed<HsgdTraining<double>>(dir, "hsgd_double");
  if (!written) {
    std::cerr << "make_checkpoint_seeds: cannot write to " << dir << '\n';
    return 1;
  }
  return 0;
}
