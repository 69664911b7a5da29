// The public header of data-parallel training over MPI: ShardedOptimizer, with the optimizer
// state sharded across ranks (the first stage of ZeRO), and its sharded checkpoints. Every rank
// registers the same tensors; each owns one contiguous slice of their concatenation and keeps
// state for that slice only (docs/distributed.md). Optional: include it only in programs that
// link MPI; the rest of multopt never includes it.
//   shard_layout.hpp        how the tensors are cut into shards (no MPI)
//   mpi_handles.hpp         MPI errors, datatypes, the optimizer's own communicator
//   sharded_optimizer.hpp   ShardedOptimizer: the step and the ranks' agreement
//   sharded_checkpoint.hpp  one checkpoint per rank
#pragma once

#include "shard_layout.hpp"
#include "mpi_handles.hpp"
#include "sharded_optimizer.hpp"
#include "sharded_checkpoint.hpp"
