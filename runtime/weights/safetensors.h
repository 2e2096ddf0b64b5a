// safetensors files and checkpoint directories.
//
// A SafetensorsFile parses the JSON header (8-byte little-endian length + JSON)
// and, if asked, maps the data section read-only. Headers are validated fully:
// offsets inside the data section, sizes equal to prod(shape) * dtype size, no
// overlaps. Every error names the file and, where relevant, the tensor.
//
// A Checkpoint is a model directory: model.safetensors.index.json (sharded) or
// model.safetensors (single file). dscc uses it with map_data=false (headers only:
// weight data is never read at compile time); dsrt maps the data.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/common/dtype.h"
#include "runtime/common/status.h"

namespace ds {

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t data_begin = 0;  // byte offsets relative to the data section
  uint64_t data_end = 0;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

class SafetensorsFile {
 public:
  static Result<std::unique_ptr<SafetensorsFile>> open(const std::string& path, bool map_data);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Pointer to the tensor's bytes; requires map_data. Never null for a valid tensor.
  const uint8_t* data(const TensorInfo& t) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
  int fd_ = -1;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  size_t data_offset_ = 0;  // start of the data section in the file
};

// A checkpoint directory: which file holds each tensor, and its header info.
class Checkpoint {
 public:
  static Result<std::unique_ptr<Checkpoint>> open(const std::string& dir, bool map_data);

  const std::string& dir() const { return dir_; }
  // Tensor names in a stable (sorted) order.
  std::vector<std::string> tensor_names() const;
  // Header info, or an error naming the tensor and the directory.
  Result<TensorInfo> info(const std::string& name) const;
  // File (relative to dir) that holds the tensor.
  Result<std::string> file_of(const std::string& name) const;
  // Open file by relative name (for data access); owned by the checkpoint.
  Result<const SafetensorsFile*> file(const std::string& relative_file) const;

 private:
  std::string dir_;
  std::map<std::string, std::string> tensor_file_;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files_;
};

}  // namespace ds
