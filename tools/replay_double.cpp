#include "replay_types.hpp"

multopt::golden::Trajectory multopt::golden::replay_double(const Case& c) { return replay<double>(c); }
