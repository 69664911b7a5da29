// The replays of multopt_replay, one parameter type per translation unit (replay_<type>.cpp):
// each instantiates every base × rule for its type, and apart they compile in parallel.
#pragma once

#include <vector>

#include "case_file.hpp"

namespace multopt::golden {

using Trajectory = std::vector<std::vector<double>>;

Trajectory replay_double(const Case& c);
Trajectory replay_float(const Case& c, const StorageMode& storage = {});
Trajectory replay_bf16(const Case& c, const StorageMode& storage);
Trajectory replay_fp16(const Case& c, const StorageMode& storage);

}  // namespace multopt::golden
