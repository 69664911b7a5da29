#include "replay_types.hpp"

multopt::golden::Trajectory multopt::golden::replay_fp16(const Case& c, const StorageMode& storage) {
  return replay<Eigen::half>(c, storage);
}
