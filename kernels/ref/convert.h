// Element loads for the reference kernels: weights and KV pages may be f32,
// f16, bf16 or f8e4m3; kernels compute in float32.
#pragma once

#include <cstdint>
#include <cstring>

#include "runtime/common/dtype.h"
#include "runtime/common/status.h"

namespace ds::ref {

inline bool is_float_dtype(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF8E4M3;
}

inline Status check_float_dtype(DType t, const char* what) {
  if (is_float_dtype(t)) return Status::Ok();
  return Status::Error(StrCat() << what << " has dtype " << dtype_name(t) << ", expected a floating type");
}

// Converts n elements starting at element `offset` of `src` (dtype t) to float.
inline void load_row(const void* src, DType t, int64_t offset, int64_t n, float* dst) {
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, static_cast<const float*>(src) + offset, static_cast<size_t>(n) * 4);
      return;
    case DType::kBF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src) + offset;
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::kF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src) + offset;
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::kF8E4M3: {
      const uint8_t* s = static_cast<const uint8_t*>(src) + offset;
      for (int64_t i = 0; i < n; ++i) dst[i] = f8e4m3_to_f32(s[i]);
      return;
    }
    default:
      DS_CHECK(false, "load_row on non-float dtype " << dtype_name(t));
  }
}

// Stores n floats to `dst` (dtype t) starting at element `offset`.
inline void store_row(const float* src, int64_t n, void* dst, DType t, int64_t offset) {
  switch (t) {
    case DType::kF32:
      std::memcpy(static_cast<float*>(dst) + offset, src, static_cast<size_t>(n) * 4);
      return;
    case DType::kBF16: {
      uint16_t* d = static_cast<uint16_t*>(dst) + offset;
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::kF16: {
      uint16_t* d = static_cast<uint16_t*>(dst) + offset;
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::kF8E4M3: {
      uint8_t* d = static_cast<uint8_t*>(dst) + offset;
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f8e4m3(src[i]);
      return;
    }
    default:
      DS_CHECK(false, "store_row on non-float dtype " << dtype_name(t));
  }
}

// float32 dot product with several partial sums (vectorizable without fast-math).
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

}  // namespace ds::ref
