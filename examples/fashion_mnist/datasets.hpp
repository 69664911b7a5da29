// The two data sets of the demo, as float pixel columns scaled to [0, 1] with int labels:
// Fashion-MNIST from its gzipped IDX files, and the small UCI digits set from a gzipped CSV.
#pragma once

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "gzip_file.hpp"

namespace demo {

// One sample per column: Eigen is column-major, so each image is contiguous.
struct Dataset {
  Eigen::MatrixXf images;
  std::vector<int> labels;

  int size() const { return int(labels.size()); }
  // Samples [first, first + count), for splitting off a validation set.
  Dataset slice(int first, int count) const {
    return {images.middleCols(first, count),
            std::vector<int>(labels.begin() + first, labels.begin() + first + count)};
  }
};

struct TrainTest {
  Dataset train, test;
};

constexpr int class_count = 10;  // both data sets have ten classes

namespace detail {

inline std::uint32_t big_endian_u32(const std::string& bytes, std::size_t offset) {
  std::uint32_t value = 0;
  for (std::size_t k = 0; k < 4; ++k) value = value << 8 | std::uint8_t(bytes[offset + k]);
  return value;
}

// The IDX header: a magic number, then one big-endian size per dimension.
inline std::vector<std::uint32_t> idx_dimensions(const std::string& bytes, std::uint32_t magic,
                                                 std::size_t rank, const std::string& path) {
  const std::size_t header = 4 * (1 + rank);
  if (bytes.size() < header || big_endian_u32(bytes, 0) != magic)
    throw std::runtime_error(path + ": not an IDX file of rank " + std::to_string(rank));
  std::vector<std::uint32_t> dims;
  std::size_t payload = 1;
  for (std::size_t k = 0; k < rank; ++k) {
    dims.push_back(big_endian_u32(bytes, 4 * (1 + k)));
    payload *= dims.back();
  }
  if (bytes.size() != header + payload)
    throw std::runtime_error(path + ": the IDX sizes do not match the file's length");
  return dims;
}

inline std::vector<int> checked_labels(std::vector<int> labels, const std::string& path) {
  for (int label : labels) {
    if (label < 0 || label >= class_count)
      throw std::runtime_error(path + ": label " + std::to_string(label) + " is not in 0..9");
  }
  return labels;
}

inline Dataset read_idx_pair(const std::string& images_path, const std::string& labels_path) {
  const std::string image_bytes = read_gzip_file(images_path);
  const std::string label_bytes = read_gzip_file(labels_path);
  const auto image_dims = idx_dimensions(image_bytes, 0x803, 3, images_path);
  const auto label_dims = idx_dimensions(label_bytes, 0x801, 1, labels_path);
  if (image_dims[0] != label_dims[0])
    throw std::runtime_error(images_path + " and " + labels_path + " hold different sample counts");

  const Eigen::Index count = image_dims[0], pixels = Eigen::Index(image_dims[1]) * image_dims[2];
  const auto* first_pixel = reinterpret_cast<const std::uint8_t*>(image_bytes.data() + 16);
  const Eigen::Map<const Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic>> raw(
      first_pixel, pixels, count);
  const auto* first_label = reinterpret_cast<const std::uint8_t*>(label_bytes.data() + 8);
  return {raw.cast<float>() / 255.0f,
          checked_labels(std::vector<int>(first_label, first_label + count), labels_path)};
}

}  // namespace detail

// The four files that Debian's dataset-fashion-mnist installs.
inline TrainTest load_fashion_mnist(const std::string& directory) {
  const std::string prefix = directory + "/";
  return {detail::read_idx_pair(prefix + "train-images-idx3-ubyte.gz", prefix + "train-labels-idx1-ubyte.gz"),
          detail::read_idx_pair(prefix + "t10k-images-idx3-ubyte.gz", prefix + "t10k-labels-idx1-ubyte.gz")};
}

// 1797 rows of 64 pixel values 0..16 and a label. The rows are in no particular class
// order, so the last fifth serves as the test set.
inline TrainTest load_digits(const std::string& path) {
  constexpr int pixels = 64, max_pixel = 16;
  std::istringstream text(read_gzip_file(path));
  std::vector<float> values;
  std::vector<int> labels;
  std::string line;
  for (int row = 1; std::getline(text, line); ++row) {
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::string field;
    std::vector<int> numbers;
    while (std::getline(fields, field, ',')) {
      std::size_t used = 0;
      int number = -1;
      try { number = std::stoi(field, &used); } catch (const std::exception&) { used = 0; }
      if (used == 0 || used != field.size() || number < 0)
        throw std::runtime_error(path + ": row " + std::to_string(row) + ": '" + field + "' is not a count");
      numbers.push_back(number);
    }
    if (numbers.size() != pixels + 1)
      throw std::runtime_error(path + ": row " + std::to_string(row) + " has " + std::to_string(numbers.size()) +
                               " fields, not " + std::to_string(pixels + 1));
    for (int k = 0; k < pixels; ++k) values.push_back(float(numbers[std::size_t(k)]) / max_pixel);
    labels.push_back(numbers.back());
  }
  const int count = int(labels.size());
  if (count < 10) throw std::runtime_error(path + ": too few rows for a train/test split");
  Dataset all{Eigen::Map<const Eigen::MatrixXf>(values.data(), pixels, count),
              detail::checked_labels(std::move(labels), path)};
  const int test_count = count / 5;
  return {all.slice(0, count - test_count), all.slice(count - test_count, test_count)};
}

// The digits set (a CSV file) or Fashion-MNIST (a directory) with its training set cut to the
// first `train_size` samples (0: all of them).
inline TrainTest load_data(bool digits, const std::string& path, int train_size) {
  TrainTest data;
  try {
    data = digits ? load_digits(path) : load_fashion_mnist(path);
  } catch (const std::runtime_error& error) {
    if (digits) throw;
    throw std::runtime_error(std::string(error.what()) + "\n(install Debian's dataset-fashion-mnist, or pass --data DIR)");
  }
  if (train_size > 0 && train_size < data.train.size()) data.train = data.train.slice(0, train_size);
  return data;
}

}  // namespace demo
