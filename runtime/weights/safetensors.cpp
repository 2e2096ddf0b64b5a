#include "runtime/weights/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "runtime/common/file_util.h"

namespace ds {
namespace {

using json = nlohmann::json;

// Headers above this are refused (the format's reference implementation uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

Status read_exact(int fd, void* buf, size_t n, uint64_t offset, const std::string& path) {
  auto* p = static_cast<char*>(buf);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, p + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::Error(StrCat() << "cannot read " << path << ": " << std::strerror(errno));
    }
    if (r == 0) return Status::Error(StrCat() << "safetensors file " << path << " is truncated (header incomplete)");
    done += static_cast<size_t>(r);
  }
  return Status::Ok();
}

Status parse_tensor(const std::string& path, const std::string& name, const json& v, uint64_t data_size,
                    TensorInfo* out) {
  auto err = [&](const std::string& what) {
    return Status::Error(StrCat() << "safetensors file " << path << ", tensor '" << name << "': " << what);
  };
  if (!v.is_object()) return err("header entry is not an object");
  if (!v.contains("dtype") || !v["dtype"].is_string()) return err("missing string 'dtype'");
  if (!v.contains("shape") || !v["shape"].is_array()) return err("missing array 'shape'");
  if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
    return err("missing 'data_offsets' [begin, end]");
  const std::string dt = v["dtype"].get<std::string>();
  auto dtype = dtype_from_safetensors(dt);
  if (!dtype) return err("unsupported dtype '" + dt + "'");
  out->name = name;
  out->dtype = *dtype;
  out->shape.clear();
  uint64_t numel = 1;
  for (const json& d : v["shape"]) {
    if (!d.is_number_unsigned()) return err("shape entries must be non-negative integers");
    uint64_t dim = d.get<uint64_t>();
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim))
      return err("shape overflows");
    numel *= dim;
    out->shape.push_back(static_cast<int64_t>(dim));
  }
  for (const json& o : v["data_offsets"])
    if (!o.is_number_unsigned()) return err("data_offsets must be non-negative integers");
  out->data_begin = v["data_offsets"][0].get<uint64_t>();
  out->data_end = v["data_offsets"][1].get<uint64_t>();
  if (out->data_end < out->data_begin)
    return err(StrCat() << "data_offsets [" << out->data_begin << ", " << out->data_end << "] end before begin");
  if (out->data_end > data_size)
    return err(StrCat() << "data_offsets end " << out->data_end << " is beyond the data section (" << data_size
                        << " bytes): file truncated?");
  const uint64_t esize = dtype_size(*dtype);
  if (numel > std::numeric_limits<uint64_t>::max() / esize) return err("size overflows");
  if (out->data_end - out->data_begin != numel * esize)
    return err(StrCat() << "byte size " << out->data_end - out->data_begin << " does not match shape x dtype ("
                        << numel << " x " << esize << " = " << numel * esize << " bytes)");
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path, bool map_data) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f->fd_ < 0) return Status::Error(StrCat() << "cannot open safetensors file " << path << ": " << std::strerror(errno));
  struct stat st {};
  if (::fstat(f->fd_, &st) != 0) return Status::Error(StrCat() << "cannot stat " << path << ": " << std::strerror(errno));
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8)
    return Status::Error(StrCat() << "safetensors file " << path << " is truncated (" << file_size
                                  << " bytes, less than the 8-byte header length)");
  uint64_t header_len = 0;
  DS_RETURN_IF_ERROR(read_exact(f->fd_, &header_len, 8, 0, path));
  if (header_len > kMaxHeaderBytes)
    return Status::Error(StrCat() << "safetensors file " << path << ": header length " << header_len << " is implausible");
  if (8 + header_len > file_size)
    return Status::Error(StrCat() << "safetensors file " << path << " is truncated: header of " << header_len
                                  << " bytes but the file has " << file_size << " bytes");
  std::string header(header_len, '\0');
  DS_RETURN_IF_ERROR(read_exact(f->fd_, header.data(), header_len, 8, path));
  f->data_offset_ = 8 + header_len;
  const uint64_t data_size = file_size - f->data_offset_;

  json j = json::parse(header, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return Status::Error(StrCat() << "safetensors file " << path << ": header is not valid JSON");
  if (!j.is_object()) return Status::Error(StrCat() << "safetensors file " << path << ": header is not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object())
        return Status::Error(StrCat() << "safetensors file " << path << ": __metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string())
          return Status::Error(StrCat() << "safetensors file " << path << ": __metadata__ value '" << m.key()
                                        << "' is not a string");
        f->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    TensorInfo t;
    DS_RETURN_IF_ERROR(parse_tensor(path, it.key(), it.value(), data_size, &t));
    f->by_name_[t.name] = f->tensors_.size();
    f->tensors_.push_back(std::move(t));
  }
  // No two tensors may overlap.
  std::vector<const TensorInfo*> sorted;
  for (const TensorInfo& t : f->tensors_) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->data_begin < b->data_begin; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i]->data_begin < sorted[i - 1]->data_end)
      return Status::Error(StrCat() << "safetensors file " << path << ": tensors '" << sorted[i - 1]->name << "' and '"
                                    << sorted[i]->name << "' overlap");
  }
  if (map_data && file_size > 0) {
    void* m = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, f->fd_, 0);
    if (m == MAP_FAILED) return Status::Error(StrCat() << "cannot mmap " << path << ": " << std::strerror(errno));
    f->map_ = m;
    f->map_size_ = file_size;
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
  if (fd_ >= 0) ::close(fd_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* SafetensorsFile::data(const TensorInfo& t) const {
  DS_CHECK(map_ != nullptr, "SafetensorsFile::data on " << path_ << " opened without map_data");
  return static_cast<const uint8_t*>(map_) + data_offset_ + t.data_begin;
}

// ---- Checkpoint --------------------------------------------------------------

Result<std::unique_ptr<Checkpoint>> Checkpoint::open(const std::string& dir, bool map_data) {
  std::unique_ptr<Checkpoint> c(new Checkpoint());
  c->dir_ = dir;
  while (c->dir_.size() > 1 && c->dir_.back() == '/') c->dir_.pop_back();
  struct stat st {};
  if (::stat(c->dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Status::Error(StrCat() << "checkpoint directory " << dir << " does not exist or is not a directory");
  const std::string index_path = c->dir_ + "/model.safetensors.index.json";
  const std::string single_path = c->dir_ + "/model.safetensors";
  std::vector<std::string> files;
  if (::stat(index_path.c_str(), &st) == 0) {
    DS_ASSIGN_OR_RETURN(std::string text, read_file(index_path));
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      return Status::Error(StrCat() << index_path << ": not valid JSON with a \"weight_map\" object");
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string())
        return Status::Error(StrCat() << index_path << ": weight_map entry '" << it.key() << "' is not a string");
      const std::string file = it.value().get<std::string>();
      if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
        return Status::Error(StrCat() << index_path << ": weight_map entry '" << it.key() << "' names file '" << file
                                      << "', expected a file name in the checkpoint directory");
      c->tensor_file_[it.key()] = file;
      if (std::find(files.begin(), files.end(), file) == files.end()) files.push_back(file);
    }
  } else if (::stat(single_path.c_str(), &st) == 0) {
    files.push_back("model.safetensors");
  } else {
    return Status::Error(StrCat() << "checkpoint directory " << c->dir_
                                  << " has neither model.safetensors.index.json nor model.safetensors");
  }
  for (const std::string& file : files) {
    DS_ASSIGN_OR_RETURN(auto sf, SafetensorsFile::open(c->dir_ + "/" + file, map_data));
    for (const TensorInfo& t : sf->tensors()) {
      auto it = c->tensor_file_.find(t.name);
      if (it == c->tensor_file_.end()) {
        if (files.size() == 1 && file == "model.safetensors") c->tensor_file_[t.name] = file;
      } else if (it->second != file) {
        // Listed in another shard by the index; the index wins, but a duplicate is suspicious.
        continue;
      }
    }
    c->files_[file] = std::move(sf);
  }
  // Every tensor named by the index must exist in its file.
  for (const auto& [name, file] : c->tensor_file_) {
    if (!c->files_.at(file)->find(name))
      return Status::Error(StrCat() << "checkpoint " << c->dir_ << ": the index places tensor '" << name << "' in "
                                    << file << " but that file has no such tensor");
  }
  return c;
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> out;
  for (const auto& kv : tensor_file_) out.push_back(kv.first);
  return out;
}

Result<std::string> Checkpoint::file_of(const std::string& name) const {
  auto it = tensor_file_.find(name);
  if (it == tensor_file_.end())
    return Status::Error(StrCat() << "tensor '" << name << "' not found in checkpoint " << dir_);
  return it->second;
}

Result<TensorInfo> Checkpoint::info(const std::string& name) const {
  DS_ASSIGN_OR_RETURN(std::string file, file_of(name));
  return *files_.at(file)->find(name);
}

Result<const SafetensorsFile*> Checkpoint::file(const std::string& relative_file) const {
  auto it = files_.find(relative_file);
  if (it == files_.end())
    return Status::Error(StrCat() << "file '" << relative_file << "' is not part of checkpoint " << dir_);
  return static_cast<const SafetensorsFile*>(it->second.get());
}

}  // namespace ds
