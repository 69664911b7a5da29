// What multopt needs of MPI, wrapped: error codes as exceptions, the datatype of a scalar, a
// communicator of the optimizer's own that frees itself, and one reduction to least and most.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace multopt {
namespace detail {

// Calls returning an error code do so only where the communicator's error handler is
// MPI_ERRORS_RETURN (the default, MPI_ERRORS_ARE_FATAL, aborts the job instead).
inline void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string("multopt: ") + call + " failed: " + std::string(text, std::size_t(length)));
}

template <class S>
MPI_Datatype mpi_type() {
  return std::is_same_v<S, float> ? MPI_FLOAT : MPI_DOUBLE;
}

// A duplicate of the caller's communicator, so that the optimizer's collectives can never
// match messages of the caller's own.
class OwnCommunicator {
 public:
  explicit OwnCommunicator(MPI_Comm parent) { check_mpi(MPI_Comm_dup(parent, &comm_), "MPI_Comm_dup"); }
  OwnCommunicator(OwnCommunicator&& other) noexcept : comm_(std::exchange(other.comm_, MPI_COMM_NULL)) {}
  OwnCommunicator& operator=(OwnCommunicator&& other) noexcept {
    std::swap(comm_, other.comm_);
    return *this;
  }
  OwnCommunicator(const OwnCommunicator&) = delete;
  OwnCommunicator& operator=(const OwnCommunicator&) = delete;
  ~OwnCommunicator() {
    int finalized = 0;
    MPI_Finalized(&finalized);  // an optimizer that outlives MPI_Finalize must not free
    if (comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
  }
  MPI_Comm get() const { return comm_; }
  int size() const {
    int size = 0;
    check_mpi(MPI_Comm_size(comm_, &size), "MPI_Comm_size");
    return size;
  }
  int rank() const {
    int rank = 0;
    check_mpi(MPI_Comm_rank(comm_, &rank), "MPI_Comm_rank");
    return rank;
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

// The element-wise least and most of `values` over the ranks (the same length on every rank),
// in one reduction: the most is the complement of the least complement.
inline std::pair<std::vector<std::uint64_t>, std::vector<std::uint64_t>> least_and_most(
    const std::vector<std::uint64_t>& values, MPI_Comm comm) {
  std::vector<std::uint64_t> both(values);
  for (std::uint64_t v : values) both.push_back(~v);
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, both.data(), int(both.size()), MPI_UINT64_T, MPI_MIN, comm), "MPI_Allreduce");
  std::vector<std::uint64_t> least(both.begin(), both.begin() + std::ptrdiff_t(values.size())), most;
  for (std::size_t k = values.size(); k < both.size(); ++k) most.push_back(~both[k]);
  return {least, most};
}

}  // namespace detail
}  // namespace multopt
