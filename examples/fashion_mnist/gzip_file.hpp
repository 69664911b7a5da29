// Reads a whole gzip-compressed file into memory with zlib (gzread also passes plain,
// uncompressed files through unchanged).
#pragma once

#include <zlib.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace demo {

inline std::string read_gzip_file(const std::string& path) {
  const std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  if (!file) throw std::runtime_error("cannot open " + path);
  std::string bytes;
  char buffer[1 << 16];
  for (;;) {
    const int read = gzread(file.get(), buffer, sizeof buffer);
    if (read < 0) {
      int code = Z_OK;
      throw std::runtime_error(path + ": " + gzerror(file.get(), &code));
    }
    if (read == 0) break;
    bytes.append(buffer, std::size_t(read));
  }
  return bytes;
}

}  // namespace demo
