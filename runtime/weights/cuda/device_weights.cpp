// DeviceWeights::load: one device allocation for every weight of the rank, filled
// from the checkpoint through double-buffered pinned staging, or generated on the
// GPU for --load-format dummy.
//
// Each source, after its rank's slice, is a contiguous [outer, cols] block of the
// weight viewed as [outer, dim(concat_axis) * inner] (outer = prod(shape[:axis]),
// inner = prod(shape[axis+1:]), cols = along * inner). The block is streamed in
// pieces of whole rows (or, for rows larger than a staging buffer, row segments):
//   host: gather the piece's bytes from the mmap into pinned staging slot s
//   GPU:  H2D into the destination directly (same dtype, contiguous in the weight), or
//         into device staging slot s, then place_block (cast + place at the
//         source's concat offset)
//   event s recorded; the host waits on it before reusing slot s, so reading the
//   next piece from disk overlaps the copy and placement of the previous one.
#include "runtime/weights/cuda/device_weights.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <thread>

#include "kernels/cuda/gemm/gather.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_buffer.h"
#include "runtime/cuda/pinned_buffer.h"
#include "runtime/weights/dummy_init.h"
#include "runtime/weights/safetensors.h"

namespace ds::cuda {
namespace {

constexpr size_t kAlign = 256;
constexpr size_t kStagingBytes = size_t{64} << 20;  // per slot; two slots
constexpr int kSlots = 2;
constexpr int64_t kCopyThreads = 4;  // host threads gathering one piece

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

int64_t prod(const std::vector<int64_t>& s, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end; ++i) n *= s[i];
  return n;
}

bool gpu_castable(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

// Copies elements [e0, e1) of the sliced source (row-major, contiguous view) to dst.
void copy_sliced_range(const SourceView& v, int64_t e0, int64_t e1, uint8_t* dst) {
  const size_t es = dtype_size(v.dtype);
  if (v.slice_axis < 0) {
    std::memcpy(dst, v.data + static_cast<size_t>(e0) * es, static_cast<size_t>(e1 - e0) * es);
    return;
  }
  const size_t axis = static_cast<size_t>(v.slice_axis);
  const int64_t inner = prod(v.shape, axis + 1, v.shape.size());
  const int64_t row = v.slice_size * inner;      // elements per slice row
  const int64_t full_row = v.shape[axis] * inner;  // elements per source row
  const int64_t skip = v.slice_start * inner;
  int64_t e = e0;
  while (e < e1) {
    const int64_t r = e / row, c = e % row;
    const int64_t n = std::min(row - c, e1 - e);
    std::memcpy(dst, v.data + static_cast<size_t>(r * full_row + skip + c) * es, static_cast<size_t>(n) * es);
    dst += static_cast<size_t>(n) * es;
    e += n;
  }
}

// copy_sliced_range on a few threads for large pieces: page faults on the
// checkpoint mapping (disk reads) overlap, and memcpy bandwidth adds up.
void copy_sliced_range_parallel(const SourceView& v, int64_t e0, int64_t e1, uint8_t* dst) {
  constexpr int64_t kPerThreadBytes = int64_t{8} << 20;
  const int64_t es = static_cast<int64_t>(dtype_size(v.dtype));
  const int64_t n = e1 - e0;
  const int64_t nthreads = std::min<int64_t>(kCopyThreads, (n * es + kPerThreadBytes - 1) / kPerThreadBytes);
  if (nthreads <= 1) {
    copy_sliced_range(v, e0, e1, dst);
    return;
  }
  std::vector<std::thread> threads;
  const int64_t per = (n + nthreads - 1) / nthreads;
  for (int64_t t = 0; t < nthreads; ++t) {
    const int64_t b = e0 + t * per, e = std::min(e1, b + per);
    if (b < e) threads.emplace_back(copy_sliced_range, std::cref(v), b, e, dst + (b - e0) * es);
  }
  for (std::thread& th : threads) th.join();
}

struct Loader {
  // Copies may still read the staging buffers when loading stops on an error.
  ~Loader() {
    if (stream) cudaStreamSynchronize(stream);
  }
  cudaStream_t stream = nullptr;
  PinnedBuffer pinned[kSlots];
  DeviceBuffer staging[kSlots];
  Event done[kSlots];
  bool used[kSlots] = {false, false};
  int next = 0;

  Status init() {
    for (int s = 0; s < kSlots; ++s) {
      DS_ASSIGN_OR_RETURN(pinned[s], PinnedBuffer::allocate(kStagingBytes));
      DS_ASSIGN_OR_RETURN(staging[s], DeviceBuffer::allocate(kStagingBytes));
      DS_ASSIGN_OR_RETURN(done[s], Event::create());
    }
    return Status::Ok();
  }

  // A free slot: waits until the GPU has finished with its previous piece.
  Result<int> acquire() {
    const int s = next;
    next = (next + 1) % kSlots;
    if (used[s]) DS_RETURN_IF_ERROR(done[s].synchronize());
    used[s] = true;
    return s;
  }

  // Places the block of `v` (sliced, [outer, cols]) into weight `t` at column col0.
  Status place_source(const SourceView& v, const DeviceTensor& t, int64_t outer, int64_t cols, int64_t dst_ld,
                      int64_t col0) {
    const size_t ses = dtype_size(v.dtype);
    // Same dtype and contiguous in the weight (full-width rows, or a single row as
    // for every concat on axis 0): straight from pinned memory into the weight.
    const bool direct = v.dtype == t.dtype && (cols == dst_ld || outer == 1);
    const int64_t row_bytes = cols * static_cast<int64_t>(ses);
    const int64_t cap = static_cast<int64_t>(kStagingBytes);
    // Pieces: whole rows when a row fits a slot, else segments of one row.
    const int64_t rows_per = row_bytes <= cap ? std::max<int64_t>(1, cap / row_bytes) : 0;
    const int64_t seg = row_bytes <= cap ? cols : cap / static_cast<int64_t>(ses);
    for (int64_t r = 0; r < outer;) {
      const int64_t nrows = rows_per > 0 ? std::min(rows_per, outer - r) : 1;
      for (int64_t c = 0; c < cols; c += seg) {
        const int64_t ncols = rows_per > 0 ? cols : std::min(seg, cols - c);
        const int64_t e0 = r * cols + c, e1 = e0 + (rows_per > 0 ? nrows * cols : ncols);
        DS_ASSIGN_OR_RETURN(int s, acquire());
        copy_sliced_range_parallel(v, e0, e1, pinned[s].bytes_data());
        const size_t bytes = static_cast<size_t>(e1 - e0) * ses;
        if (direct) {
          uint8_t* dst = static_cast<uint8_t*>(t.data) + static_cast<size_t>(r * dst_ld + col0 + c) * ses;
          DS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, pinned[s].bytes_data(), bytes, cudaMemcpyHostToDevice, stream));
        } else {
          DS_CUDA_RETURN_IF_ERROR(
              cudaMemcpyAsync(staging[s].data(), pinned[s].bytes_data(), bytes, cudaMemcpyHostToDevice, stream));
          DS_RETURN_IF_ERROR(place_block(staging[s].data(), v.dtype, nrows, ncols, ncols, t.data, t.dtype, dst_ld, r,
                                         col0 + c, stream));
        }
        DS_RETURN_IF_ERROR(done[s].record(stream));
      }
      r += nrows;
    }
    return Status::Ok();
  }
};

}  // namespace

size_t DeviceWeights::plan_bytes(const LoadedPlan& plan) {
  const plan::Plan& p = plan.plan();
  size_t total = 0;
  if (!p.weights()) return 0;
  for (const plan::Weight* w : *p.weights()) {
    int64_t n = 1;
    for (int64_t d : *w->shape()) n *= d;
    total += align_up(static_cast<size_t>(n) * dtype_size(static_cast<DType>(w->dtype())));
  }
  return total;
}

DeviceWeights::~DeviceWeights() {
  if (base_) cudaFree(base_);
}

Result<std::unique_ptr<DeviceWeights>> DeviceWeights::load(const LoadedPlan& lp, const WeightLoadOptions& opt,
                                                           cudaStream_t stream, const LoadProgressFn& progress) {
  const plan::Plan& p = lp.plan();
  if (opt.tp_rank < 0 || opt.tp_rank >= p.tp_size())
    return Status::Error(StrCat() << "tensor-parallel rank " << opt.tp_rank << " out of range for tp_size "
                                  << p.tp_size());
  std::unique_ptr<DeviceWeights> dw(new DeviceWeights());
  const size_t nw = p.weights() ? p.weights()->size() : 0;
  dw->tensors_.resize(nw);
  std::vector<size_t> offsets(nw);
  size_t total = 0, payload = 0;  // allocation (aligned) and weight bytes
  for (size_t wi = 0; wi < nw; ++wi) {
    const plan::Weight* w = p.weights()->Get(wi);
    DeviceTensor& t = dw->tensors_[wi];
    t.name = w->name()->str();
    t.dtype = static_cast<DType>(w->dtype());
    t.shape.assign(w->shape()->begin(), w->shape()->end());
    t.nbytes = static_cast<size_t>(prod(t.shape, 0, t.shape.size())) * dtype_size(t.dtype);
    if (!gpu_castable(t.dtype))
      return Status::Error(StrCat() << "weight '" << t.name << "' has dtype " << dtype_name(t.dtype)
                                    << ", which the GPU loader does not build (f32, f16 or bf16)");
    offsets[wi] = total;
    total += align_up(t.nbytes);
    payload += t.nbytes;
  }

  // Check every source before allocating anything on the device.
  std::unique_ptr<Checkpoint> ck;
  std::vector<std::vector<SourceView>> sources(nw);
  const bool dummy = opt.format == LoadFormat::kDummy;
  if (!dummy) {
    DS_ASSIGN_OR_RETURN(std::string dir, plan_checkpoint_dir(lp, opt));
    DS_ASSIGN_OR_RETURN(ck, Checkpoint::open(dir, /*map_data=*/true));
    for (size_t wi = 0; wi < nw; ++wi) {
      DS_ASSIGN_OR_RETURN(sources[wi], resolve_weight_sources(*ck, *p.weights()->Get(wi), opt.tp_rank, true));
      for (const SourceView& v : sources[wi])
        if (!gpu_castable(v.dtype))
          return Status::Error(StrCat() << "weight '" << dw->tensors_[wi].name << "': tensor '" << v.name << "' in "
                                        << v.path << " has dtype " << dtype_name(v.dtype)
                                        << ", which the GPU loader does not convert (f32, f16 or bf16)");
    }
  }

  if (total > 0) {
    cudaError_t err = cudaMalloc(&dw->base_, total);
    if (err != cudaSuccess) {
      dw->base_ = nullptr;
      size_t free_b = 0, total_b = 0;
      cudaGetLastError();
      cudaMemGetInfo(&free_b, &total_b);
      return Status::Error(StrCat() << "cannot allocate " << total << " bytes of device memory for the weights ("
                                    << free_b << " of " << total_b << " bytes free): " << cudaGetErrorString(err));
    }
  }
  dw->total_bytes_ = total;
  for (size_t wi = 0; wi < nw; ++wi) dw->tensors_[wi].data = static_cast<uint8_t*>(dw->base_) + offsets[wi];

  size_t done = 0;
  if (dummy) {
    for (size_t wi = 0; wi < nw; ++wi) {
      const DeviceTensor& t = dw->tensors_[wi];
      DS_RETURN_IF_ERROR(fill_dummy(t.data, t.dtype, prod(t.shape, 0, t.shape.size()),
                                    dummy_weight_key(opt.dummy_seed, t.name), opt.dummy_scale, stream)
                             .with_context("weight '" + t.name + "'"));
      done += t.nbytes;
      if (progress) progress(done, payload);
    }
    DS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    return dw;
  }

  Loader loader;
  loader.stream = stream;
  DS_RETURN_IF_ERROR(loader.init());
  for (size_t wi = 0; wi < nw; ++wi) {
    const plan::Weight* w = p.weights()->Get(wi);
    const DeviceTensor& t = dw->tensors_[wi];
    const size_t axis = static_cast<size_t>(w->concat_axis());
    const int64_t outer = prod(t.shape, 0, axis);
    const int64_t inner = prod(t.shape, axis + 1, t.shape.size());
    const int64_t dst_ld = t.shape[axis] * inner;
    int64_t offset = 0;  // along concat_axis
    for (const SourceView& v : sources[wi]) {
      const std::vector<int64_t> eff = v.sliced_shape();
      const int64_t along = eff.size() == t.shape.size() ? eff[axis] : 1;
      DS_RETURN_IF_ERROR(loader.place_source(v, t, outer, along * inner, dst_ld, offset * inner)
                             .with_context("weight '" + t.name + "', tensor '" + v.name + "' in " + v.path));
      offset += along;
    }
    done += t.nbytes;
    if (progress) progress(done, payload);
  }
  DS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return dw;
}

}  // namespace ds::cuda
