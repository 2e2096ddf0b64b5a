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

}  // namespace ds
