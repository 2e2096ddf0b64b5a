#include "runtime/dist/communicator.h"

#include <cstring>

namespace ds {

Status all_gather_rows(Communicator& comm, const float* in, int64_t rows, int64_t n, float* out,
                       std::vector<float>& scratch) {
  if (rows < 0 || n < 0) return Status::Error(StrCat() << "all_gather of " << rows << " rows of " << n << " elements");
  const int64_t size = comm.size();
  const size_t count = static_cast<size_t>(rows * n);
  if (size == 1) {
    if (out != in) std::memmove(out, in, count * sizeof(float));
    return Status::Ok();
  }
  scratch.resize(count * static_cast<size_t>(size));
  DS_RETURN_IF_ERROR(comm.all_gather(in, count, scratch.data()));
  // scratch is [rank][row][n]; out is [row][rank][n].
  for (int64_t r = 0; r < size; ++r)
    for (int64_t row = 0; row < rows; ++row)
      std::memcpy(out + (row * size + r) * n, scratch.data() + (r * rows + row) * n, static_cast<size_t>(n) * sizeof(float));
  return Status::Ok();
}

Status check_same_plan(Communicator& comm, std::string_view plan_bytes) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : plan_bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  // Four 16-bit pieces travel exactly as floats.
  float mine[4];
  for (int i = 0; i < 4; ++i) mine[i] = static_cast<float>((h >> (16 * i)) & 0xffff);
  std::vector<float> all(4 * static_cast<size_t>(comm.size()));
  DS_RETURN_IF_ERROR(comm.all_gather(mine, 4, all.data()));
  for (int r = 0; r < comm.size(); ++r)
    for (int i = 0; i < 4; ++i)
      if (all[static_cast<size_t>(r * 4 + i)] != all[static_cast<size_t>(i)])
        return Status::Error(StrCat() << "rank " << r << " loaded a different plan than rank 0 (plan hashes differ); "
                                      << "every rank must run the same plan file");
  return Status::Ok();
}

}  // namespace ds
