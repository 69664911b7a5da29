// How a step is cut into chunks and spread over threads: the chunks of a call's tensors and the
// loop over them, serial or OpenMP's (step_chunk.hpp steps each chunk).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "simd.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace multopt {

// A piece of work for one thread: elements [begin, end) of one tensor.
struct Chunk {
  std::size_t tensor, begin, end;
};

// How a step is spread over threads (used only when compiled with OpenMP).
struct ThreadSettings {
  static constexpr int max_threads = 1024;  // more is refused; a step never asks OpenMP for more than its limit
  int threads = 0;                      // 0: OpenMP's default (OMP_NUM_THREADS)
  std::size_t serial_below = 1u << 16;  // steps of fewer elements in all stay on one thread
  std::size_t chunk = 1u << 14;         // elements per chunk: small enough to balance threads
};

// Splits tensors of these sizes into chunks of about `chunk` elements, cut at packet bounds, or
// at row bounds for a tensor k of rows (row_widths[k] > 0). The packet bounds are those of the
// widest packet of any kernel (64 bytes, AVX-512's): in a program that dispatches
// (dispatch.hpp), a kernel's packets may be wider than those of the code that cuts the chunks.
template <class S>
void make_chunks(const std::vector<std::size_t>& sizes, const std::vector<std::size_t>& row_widths, std::size_t chunk,
                 std::vector<Chunk>& chunks) {
  constexpr std::size_t width = std::max<std::size_t>(simd::Vec<S>::size, 64 / sizeof(S));
  const std::size_t packets = std::max(width, chunk - chunk % width);
  chunks.clear();
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    const std::size_t row = row_widths[k];
    const std::size_t length = row ? std::max(row, chunk - chunk % row) : packets;
    for (std::size_t begin = 0; begin < sizes[k]; begin += length)
      chunks.push_back({k, begin, std::min(sizes[k], begin + length)});
  }
}

// Calls work(c) for c in [0, count), on several threads when a step of total_size elements is
// large enough to gain from it. Static schedule: a thread gets the same chunks at every call.
// A serial call enters no parallel region, which costs time even on one thread (about as much
// as stepping a small tensor, docs/reliability.md).
template <class Work>
void for_each_chunk(std::size_t count, std::size_t total_size, const ThreadSettings& threading, const Work& work) {
  const long last = long(count);
#ifdef _OPENMP
  if (total_size >= threading.serial_below && last > 1 && threading.threads != 1) {
    const int threads = std::min(threading.threads > 0 ? threading.threads : omp_get_max_threads(), omp_get_thread_limit());
#pragma omp parallel for schedule(static) num_threads(threads)
    for (long c = 0; c < last; ++c) work(std::size_t(c));
    return;
  }
#else
  (void)total_size;
  (void)threading;
#endif
  for (long c = 0; c < last; ++c) work(std::size_t(c));
}

}  // namespace multopt
