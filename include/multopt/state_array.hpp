// The arrays that hold optimizer state: 64-byte aligned (a cache line, and room for any SIMD
// width), from the global aligned operator new, so that a program that replaces operator new
// (to count or to fail allocations) sees them too.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace multopt {

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t alignment{64};

  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(::operator new(n * sizeof(T), alignment));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, alignment); }

  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const CacheLineAllocator<U>&) const noexcept { return false; }
};

template <class S>
using StateArray = std::vector<S, CacheLineAllocator<S>>;

// Where an array's values are, or null while it has none.
template <class S>
S* data_or_null(StateArray<S>& array) { return array.empty() ? nullptr : array.data(); }
template <class S>
const S* data_or_null(const StateArray<S>& array) { return array.empty() ? nullptr : array.data(); }

}  // namespace multopt
