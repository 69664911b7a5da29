#include "replay_types.hpp"

multopt::golden::Trajectory multopt::golden::replay_float(const Case& c) { return replay<float>(c); }
