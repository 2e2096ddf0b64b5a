// Row gathers, casts, block placement and dummy weight fill (gather.h).
// Every kernel handles 8 elements (or one 16-byte vector) per thread step where
// the pointers and widths allow it, and falls back to scalar accesses otherwise.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/gemm/gather.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/pdl.cuh"
#include "runtime/weights/dummy_init.h"

namespace ds::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

// Element conversions through f32 (round to nearest even, as ds::f32_to_bf16).
template <typename T>
__device__ __forceinline__ float to_f32(T v);
template <>
__device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename T>
struct alignas(8 * sizeof(T)) Vec8 {
  T v[8];
};

bool aligned(const void* p, size_t a) { return (reinterpret_cast<uintptr_t>(p) % a) == 0; }

unsigned blocks_for(int64_t work, int64_t per_block) {
  const int64_t b = (work + per_block - 1) / per_block;
  return static_cast<unsigned>(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}

bool is_float16_32(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

Status check_float_dtype(DType t, const char* fn, const char* what) {
  if (is_float16_32(t)) return Status::Ok();
  return Status::Error(StrCat() << fn << ": " << what << " dtype " << dtype_name(t) << " is not f32, f16 or bf16");
}

// Calls f(T{}) with T the device type of `t` (f32/f16/bf16; checked by the caller).
template <typename F>
Status dispatch(DType t, F&& f) {
  switch (t) {
    case DType::kF32: return f(float{});
    case DType::kF16: return f(__half{});
    case DType::kBF16: return f(__nv_bfloat16{});
    default: return Status::Error(StrCat() << "unsupported dtype " << dtype_name(t));
  }
}

// d[0, cols) = s[0, cols) converted to D (zeros when s is null), the block's
// threads striding over 8-element vectors when `vec` (cols % 8 == 0 and both
// rows aligned to 8 elements), over elements otherwise.
template <typename S, typename D>
__device__ __forceinline__ void convert_row(const S* s, D* d, int64_t cols, bool vec) {
  if (vec) {
    for (int64_t i = threadIdx.x; i < cols / 8; i += blockDim.x) {
      Vec8<D> o;
      if (s != nullptr) {
        const Vec8<S> v = reinterpret_cast<const Vec8<S>*>(s)[i];
#pragma unroll
        for (int j = 0; j < 8; ++j) o.v[j] = from_f32<D>(to_f32(v.v[j]));
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) o.v[j] = from_f32<D>(0.0f);
      }
      reinterpret_cast<Vec8<D>*>(d)[i] = o;
    }
  } else {
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) d[i] = from_f32<D>(s != nullptr ? to_f32(s[i]) : 0.0f);
  }
}

// ---- embedding_gather -------------------------------------------------------
template <typename T>
__global__ void embedding_kernel(const int32_t* ids, int64_t num_tokens, const T* table, int64_t vocab_start,
                                 int64_t rows, int64_t hidden, __nv_bfloat16* out, bool vec) {
  pdl_wait();  // ids are step metadata (PDL-aware launch, runtime/cuda/pdl.h)
  pdl_trigger();
  for (int64_t tok = blockIdx.x; tok < num_tokens; tok += gridDim.x) {
    const int64_t local = static_cast<int64_t>(ids[tok]) - vocab_start;
    const bool hit = local >= 0 && local < rows;  // else another rank's shard: zeros
    convert_row(hit ? table + local * hidden : static_cast<const T*>(nullptr), out + tok * hidden, hidden, vec);
  }
}

// ---- gather_rows --------------------------------------------------------------
template <typename U>
__global__ void gather_rows_kernel(const U* x, int64_t row_units, const int32_t* rows, int64_t num_rows, U* out) {
  pdl_wait();
  pdl_trigger();
  for (int64_t r = blockIdx.x; r < num_rows; r += gridDim.x) {
    const U* src = x + static_cast<int64_t>(rows[r]) * row_units;
    U* dst = out + r * row_units;
    for (int64_t i = threadIdx.x; i < row_units; i += blockDim.x) dst[i] = src[i];
  }
}

// ---- cast_elements / fill_dummy ------------------------------------------------
template <typename S, typename D>
__global__ void cast_kernel(const S* src, D* dst, int64_t n, bool vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x * 8;
  for (int64_t base = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 8; base < n; base += stride) {
    if (vec && base + 8 <= n) {
      const Vec8<S> s = *reinterpret_cast<const Vec8<S>*>(src + base);
      Vec8<D> d;
#pragma unroll
      for (int j = 0; j < 8; ++j) d.v[j] = from_f32<D>(to_f32(s.v[j]));
      *reinterpret_cast<Vec8<D>*>(dst + base) = d;
    } else {
      for (int64_t i = base; i < n && i < base + 8; ++i) dst[i] = from_f32<D>(to_f32(src[i]));
    }
  }
}

template <typename D>
__global__ void fill_dummy_kernel(D* dst, int64_t n, uint64_t key, float scale, bool vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x * 8;
  for (int64_t base = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 8; base < n; base += stride) {
    if (vec && base + 8 <= n) {
      Vec8<D> d;
#pragma unroll
      for (int j = 0; j < 8; ++j)
        d.v[j] = from_f32<D>(ds::dummy_weight_value(key, static_cast<uint64_t>(base + j), scale));
      *reinterpret_cast<Vec8<D>*>(dst + base) = d;
    } else {
      for (int64_t i = base; i < n && i < base + 8; ++i)
        dst[i] = from_f32<D>(ds::dummy_weight_value(key, static_cast<uint64_t>(i), scale));
    }
  }
}

// ---- place_block ----------------------------------------------------------------
template <typename S, typename D>
__global__ void place_kernel(const S* src, int64_t rows, int64_t cols, int64_t src_ld, D* dst, int64_t dst_ld,
                             bool vec) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) convert_row(src + r * src_ld, dst + r * dst_ld, cols, vec);
}

}  // namespace

Status embedding_gather(const int32_t* ids, int64_t num_tokens, const void* table, DType table_dtype,
                        int64_t vocab_start, int64_t rows, int64_t hidden, void* out, cudaStream_t stream) {
  DS_RETURN_IF_ERROR(check_float_dtype(table_dtype, "embedding_gather", "table"));
  if (num_tokens < 0 || rows < 0 || hidden <= 0 || vocab_start < 0)
    return Status::Error(StrCat() << "embedding_gather: bad sizes num_tokens=" << num_tokens << " rows=" << rows
                                  << " hidden=" << hidden << " vocab_start=" << vocab_start);
  if (num_tokens == 0) return Status::Ok();
  if (ids == nullptr || out == nullptr || (rows > 0 && table == nullptr))
    return Status::Error("embedding_gather: ids, table and out must be non-null");
  const size_t es = dtype_size(table_dtype);
  const bool vec = hidden % 8 == 0 && aligned(table, 8 * es) && aligned(out, 16);
  return dispatch(table_dtype, [&](auto tag) -> Status {
    using T = decltype(tag);
    DS_CUDA_RETURN_IF_ERROR(launch_kernel(embedding_kernel<T>, dim3(blocks_for(num_tokens, 1)), dim3(kThreads), 0,
                                          stream, ids, num_tokens, static_cast<const T*>(table), vocab_start, rows,
                                          hidden, static_cast<__nv_bfloat16*>(out), vec));
    DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return Status::Ok();
  });
}

Status gather_rows(const void* x, int64_t width, int64_t elem_bytes, const int32_t* rows, int64_t num_rows, void* out,
                   cudaStream_t stream) {
  if (width <= 0 || elem_bytes <= 0 || num_rows < 0)
    return Status::Error(StrCat() << "gather_rows: bad sizes width=" << width << " elem_bytes=" << elem_bytes
                                  << " num_rows=" << num_rows);
  if (num_rows == 0) return Status::Ok();
  if (x == nullptr || rows == nullptr || out == nullptr)
    return Status::Error("gather_rows: x, rows and out must be non-null");
  const int64_t row_bytes = width * elem_bytes;
  auto launch = [&](auto unit) -> Status {
    using U = decltype(unit);
    DS_CUDA_RETURN_IF_ERROR(launch_kernel(gather_rows_kernel<U>, dim3(blocks_for(num_rows, 1)), dim3(kThreads), 0,
                                          stream, static_cast<const U*>(x),
                                          row_bytes / static_cast<int64_t>(sizeof(U)), rows, num_rows,
                                          static_cast<U*>(out)));
    DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return Status::Ok();
  };
  if (row_bytes % 16 == 0 && aligned(x, 16) && aligned(out, 16)) return launch(uint4{});
  if (row_bytes % 4 == 0 && aligned(x, 4) && aligned(out, 4)) return launch(uint32_t{});
  if (row_bytes % 2 == 0 && aligned(x, 2) && aligned(out, 2)) return launch(uint16_t{});
  return launch(uint8_t{});
}

Status cast_elements(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n, cudaStream_t stream) {
  DS_RETURN_IF_ERROR(check_float_dtype(src_dtype, "cast_elements", "source"));
  DS_RETURN_IF_ERROR(check_float_dtype(dst_dtype, "cast_elements", "destination"));
  if (n < 0) return Status::Error(StrCat() << "cast_elements: negative element count " << n);
  if (n == 0) return Status::Ok();
  if (src == nullptr || dst == nullptr) return Status::Error("cast_elements: src and dst must be non-null");
  if (src_dtype == dst_dtype) {
    DS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * dtype_size(src_dtype),
                                            cudaMemcpyDeviceToDevice, stream));
    return Status::Ok();
  }
  const bool vec = aligned(src, 8 * dtype_size(src_dtype)) && aligned(dst, 8 * dtype_size(dst_dtype));
  return dispatch(src_dtype, [&](auto s) -> Status {
    using S = decltype(s);
    return dispatch(dst_dtype, [&](auto d) -> Status {
      using D = decltype(d);
      cast_kernel<S, D><<<blocks_for(n, 8 * kThreads), kThreads, 0, stream>>>(static_cast<const S*>(src),
                                                                              static_cast<D*>(dst), n, vec);
      DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
      return Status::Ok();
    });
  });
}

Status place_block(const void* src, DType src_dtype, int64_t rows, int64_t cols, int64_t src_ld, void* dst,
                   DType dst_dtype, int64_t dst_ld, int64_t dst_row0, int64_t dst_col0, cudaStream_t stream) {
  DS_RETURN_IF_ERROR(check_float_dtype(src_dtype, "place_block", "source"));
  DS_RETURN_IF_ERROR(check_float_dtype(dst_dtype, "place_block", "destination"));
  if (rows < 0 || cols < 0 || src_ld < cols || dst_ld <= 0 || dst_row0 < 0 || dst_col0 < 0 ||
      dst_col0 + cols > dst_ld)
    return Status::Error(StrCat() << "place_block: bad geometry rows=" << rows << " cols=" << cols
                                  << " src_ld=" << src_ld << " dst_ld=" << dst_ld << " at (" << dst_row0 << ", "
                                  << dst_col0 << ")");
  if (rows == 0 || cols == 0) return Status::Ok();
  if (src == nullptr || dst == nullptr) return Status::Error("place_block: src and dst must be non-null");
  const size_t ses = dtype_size(src_dtype), des = dtype_size(dst_dtype);
  char* dst0 = static_cast<char*>(dst) + (dst_row0 * dst_ld + dst_col0) * static_cast<int64_t>(des);
  if (src_dtype == dst_dtype) {
    DS_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(dst0, dst_ld * des, src, src_ld * ses, cols * ses, rows,
                                              cudaMemcpyDeviceToDevice, stream));
    return Status::Ok();
  }
  const bool vec = cols % 8 == 0 && src_ld % 8 == 0 && dst_ld % 8 == 0 && aligned(src, 8 * ses) &&
                   aligned(dst0, 8 * des);
  return dispatch(src_dtype, [&](auto s) -> Status {
    using S = decltype(s);
    return dispatch(dst_dtype, [&](auto d) -> Status {
      using D = decltype(d);
      place_kernel<S, D><<<blocks_for(rows, 1), kThreads, 0, stream>>>(static_cast<const S*>(src), rows, cols, src_ld,
                                                                      reinterpret_cast<D*>(dst0), dst_ld, vec);
      DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
      return Status::Ok();
    });
  });
}

Status fill_dummy(void* dst, DType dtype, int64_t n, uint64_t key, float scale, cudaStream_t stream) {
  DS_RETURN_IF_ERROR(check_float_dtype(dtype, "fill_dummy", "destination"));
  if (n < 0) return Status::Error(StrCat() << "fill_dummy: negative element count " << n);
  if (n == 0) return Status::Ok();
  if (dst == nullptr) return Status::Error("fill_dummy: dst must be non-null");
  const bool vec = aligned(dst, 8 * dtype_size(dtype));
  return dispatch(dtype, [&](auto tag) -> Status {
    using D = decltype(tag);
    fill_dummy_kernel<D><<<blocks_for(n, 8 * kThreads), kThreads, 0, stream>>>(static_cast<D*>(dst), n, key, scale,
                                                                                vec);
    DS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return Status::Ok();
  });
}

}  // namespace ds::cuda
