#include "replay_types.hpp"

multopt::golden::Trajectory multopt::golden::replay_float(const Case& c, const StorageMode& storage) {
  return replay<float>(c, storage);
}
