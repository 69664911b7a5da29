#include "replay_types.hpp"

multopt::golden::Trajectory multopt::golden::replay_bf16(const Case& c, const StorageMode& storage) {
  return replay<Eigen::bfloat16>(c, storage);
}
