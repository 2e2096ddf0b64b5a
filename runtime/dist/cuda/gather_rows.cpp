#include "runtime/dist/cuda/gather_rows.h"

#include "runtime/cuda/cuda_check.h"

namespace ds::cuda {

size_t all_gather_rows_scratch_bytes(int size, int64_t rows, int64_t n, DType dtype) {
  if (size <= 1 || rows <= 1 || n <= 0) return 0;
  return static_cast<size_t>(size) * static_cast<size_t>(rows) * static_cast<size_t>(n) * dtype_size(dtype);
}

Status all_gather_rows(DeviceCommunicator& comm, const void* in, DType dtype, int64_t rows, int64_t n, void* out,
                       void* scratch, cudaStream_t stream) {
  if (rows < 0 || n < 0)
    return Status::Error(StrCat() << "all_gather_rows: negative shape [" << rows << ", " << n << "]");
  if (rows == 0 || n == 0) return Status::Ok();
  if (in == nullptr || out == nullptr) return Status::Error("all_gather_rows: null input or output");
  const int size = comm.size();
  const size_t es = dtype_size(dtype);
  const size_t row_bytes = static_cast<size_t>(n) * es;
  const size_t count = static_cast<size_t>(rows) * static_cast<size_t>(n);
  if (size == 1) {
    if (in != out)
      DS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(out, in, count * es, cudaMemcpyDeviceToDevice, stream));
    return Status::Ok();
  }
  if (rows == 1) return comm.all_gather(in, dtype, count, out, stream);
  if (scratch == nullptr)
    return Status::Error(StrCat() << "all_gather_rows: [" << rows << ", " << n << "] x " << size
                                  << " ranks needs " << all_gather_rows_scratch_bytes(size, rows, n, dtype)
                                  << " bytes of scratch, got none");
  DS_RETURN_IF_ERROR(comm.all_gather(in, dtype, count, scratch, stream));
  // scratch [size, rows, n] -> out [rows, size * n]: one strided copy per rank.
  for (int r = 0; r < size; ++r) {
    const auto* src = static_cast<const uint8_t*>(scratch) + static_cast<size_t>(r) * count * es;
    auto* dst = static_cast<uint8_t*>(out) + static_cast<size_t>(r) * row_bytes;
    DS_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(dst, row_bytes * size, src, row_bytes, row_bytes,
                                              static_cast<size_t>(rows), cudaMemcpyDeviceToDevice, stream));
  }
  return Status::Ok();
}

}  // namespace ds::cuda
