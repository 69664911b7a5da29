// The binary encoding of checkpoints (docs/checkpoint-format.md): little-endian fields, reals
// as their IEEE-754 bits, CRC-32, and streams that keep the checksum of what passes through
// them. The sharded checkpoints of distributed/mpi.hpp use them too.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <istream>
#include <limits>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace multopt::detail {

static_assert(std::numeric_limits<float>::is_iec559 && std::numeric_limits<double>::is_iec559,
              "checkpoints store IEEE-754 binary32 and binary64 values");

inline constexpr std::size_t io_buffer_bytes = std::size_t(1) << 16;

// CRC-32 as zlib, PNG and Ethernet compute it (reflected polynomial 0xEDB88320), so that
// any zlib binding can check a checkpoint. It detects every burst of up to 32 flipped bits.
inline constexpr std::array<std::uint32_t, 256> crc32_table = [] {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t byte = 0; byte < 256; ++byte) {
    std::uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? 0xEDB88320u : 0u);
    table[byte] = crc;
  }
  return table;
}();

class Crc32 {
 public:
  void update(const unsigned char* bytes, std::size_t count) {
    for (std::size_t k = 0; k < count; ++k) state_ = crc32_table[(state_ ^ bytes[k]) & 0xFFu] ^ (state_ >> 8);
  }
  std::uint32_t value() const { return ~state_; }

 private:
  std::uint32_t state_ = 0xFFFFFFFFu;
};

using Bytes = std::vector<unsigned char>;

// Fields are little-endian whatever the machine's byte order; reals are their IEEE-754 bits.
template <class U>
void put(Bytes& out, U value) {
  static_assert(std::is_unsigned_v<U>);
  for (std::size_t k = 0; k < sizeof(U); ++k) out.push_back(static_cast<unsigned char>(value >> (8 * k)));
}

template <class U>
U get(const unsigned char* bytes) {
  U value = 0;
  for (std::size_t k = 0; k < sizeof(U); ++k) value = U(value | U(bytes[k]) << (8 * k));
  return value;
}

template <class F>
using BitsOf = std::conditional_t<sizeof(F) == 4, std::uint32_t, std::uint64_t>;

template <class F>
BitsOf<F> bits_of(F value) {
  BitsOf<F> bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

template <class F>
F from_bits(BitsOf<F> bits) {
  F value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

inline void put_text(Bytes& out, const std::string& text) {
  put<std::uint64_t>(out, text.size());
  out.insert(out.end(), text.begin(), text.end());
}

// Writes to the stream, keeping the CRC-32 of everything written so far.
class ChecksummedWriter {
 public:
  explicit ChecksummedWriter(std::ostream& out) : out_(out) {}
  void write(const Bytes& bytes) {
    crc_.update(bytes.data(), bytes.size());
    out_.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
  void write_checksum() {
    Bytes bytes;
    put(bytes, crc_.value());
    write(bytes);
  }

 private:
  std::ostream& out_;
  Crc32 crc_;
};

// Reads from the stream, keeping the CRC-32 of everything read so far and where it is.
class ChecksummedReader {
 public:
  explicit ChecksummedReader(std::istream& in) : in_(in) {}

  // Reads exactly `count` bytes, or reports that the stream ended inside `what`.
  void read(unsigned char* out, std::size_t count, const std::string& what) {
    in_.read(reinterpret_cast<char*>(out), std::streamsize(count));
    const auto got = std::size_t(in_.gcount());
    offset_ += got;
    if (in_.bad()) {
      throw std::runtime_error("multopt: reading the checkpoint failed after " + std::to_string(offset_) +
                               " bytes, inside " + what + " (the stream reports an error)");
    }
    if (got != count) {
      throw std::runtime_error("multopt: the checkpoint is truncated: the stream ends after " +
                               std::to_string(offset_) + " bytes, inside " + what);
    }
    crc_.update(out, count);
  }
  template <class U>
  U read(const std::string& what) {
    unsigned char bytes[sizeof(U)];
    read(bytes, sizeof bytes, what);
    return get<U>(bytes);
  }
  // Reads a CRC-32 and compares it with that of every byte before it.
  void verify_checksum(const std::string& what) {
    const std::uint32_t expected = crc_.value();
    if (read<std::uint32_t>("the checksum of " + what) != expected) {
      throw std::runtime_error("multopt: the checkpoint is corrupted: the checksum of " + what +
                               " does not match its bytes");
    }
  }

 private:
  std::istream& in_;
  Crc32 crc_;
  std::uint64_t offset_ = 0;
};

template <class S>
void write_values(ChecksummedWriter& out, const S* values, std::size_t count) {
  const std::size_t per_buffer = io_buffer_bytes / sizeof(S);
  Bytes buffer;
  buffer.reserve(std::min(count, per_buffer) * sizeof(S));
  for (std::size_t begin = 0; begin < count; begin += per_buffer) {
    buffer.clear();
    for (std::size_t k = begin; k < std::min(count, begin + per_buffer); ++k) put(buffer, bits_of(values[k]));
    out.write(buffer);
  }
}

// Reads values stored as Stored into S: exact, but for double to float, which rounds to
// nearest and refuses a finite value beyond float's range (converting it is undefined).
template <class Stored, class S>
void read_values(ChecksummedReader& in, S* values, std::size_t count, const std::string& what) {
  const std::size_t per_buffer = io_buffer_bytes / sizeof(Stored);
  Bytes buffer(std::min(count, per_buffer) * sizeof(Stored));
  for (std::size_t begin = 0; begin < count; begin += per_buffer) {
    const std::size_t n = std::min(count - begin, per_buffer);
    in.read(buffer.data(), n * sizeof(Stored), what);
    for (std::size_t k = 0; k < n; ++k) {
      const Stored value = from_bits<Stored>(get<BitsOf<Stored>>(buffer.data() + k * sizeof(Stored)));
      if constexpr (sizeof(Stored) > sizeof(S)) {
        if (std::isfinite(value) && std::abs(value) > Stored(std::numeric_limits<S>::max()))
          throw std::invalid_argument("multopt: " + what + " holds a value beyond the range of float");
      }
      values[begin + k] = S(value);
    }
  }
}

}  // namespace multopt::detail
