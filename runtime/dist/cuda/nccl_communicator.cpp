#include "runtime/dist/cuda/nccl_communicator.h"

#include <cstdint>
#include <optional>
#include <thread>

#include "runtime/cuda/cuda_check.h"

namespace ds::cuda {
namespace {

using Clock = std::chrono::steady_clock;

// Spins (yielding) for the first 20 ms, which covers an enqueue and a decode
// step without adding wake-up latency (CUDA's own synchronize spins too), then
// sleeps 50 us per poll so a long wait (a slow peer) costs little CPU.
class Backoff {
 public:
  void pause() {
    if (Clock::now() - start_ < std::chrono::milliseconds(20)) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

 private:
  Clock::time_point start_ = Clock::now();
};

// NCCL's destroy/abort may switch the calling thread's current device.
class DeviceRestorer {
 public:
  DeviceRestorer() { ok_ = cudaGetDevice(&device_) == cudaSuccess; }
  ~DeviceRestorer() {
    if (ok_) (void)cudaSetDevice(device_);
  }

 private:
  int device_ = 0;
  bool ok_ = false;
};

std::optional<ncclDataType_t> reduce_type(DType t) {
  switch (t) {
    case DType::kF32: return ncclFloat32;
    case DType::kF16: return ncclFloat16;
    case DType::kBF16: return ncclBfloat16;
    default: return std::nullopt;
  }
}

// all_gather only copies: any dtype, moved as its NCCL type or as bytes.
std::pair<ncclDataType_t, size_t> gather_type(DType t) {
  switch (t) {
    case DType::kF32: return {ncclFloat32, 1};
    case DType::kF16: return {ncclFloat16, 1};
    case DType::kBF16: return {ncclBfloat16, 1};
    case DType::kI32: return {ncclInt32, 1};
    case DType::kI64: return {ncclInt64, 1};
    default: return {ncclUint8, dtype_size(t)};
  }
}

std::string last_error(ncclComm_t comm) {
  const char* s = ncclGetLastError(comm);
  if (s == nullptr || *s == '\0') return std::string();
  return StrCat() << " (" << s << ")";
}

}  // namespace

ncclResult_t nccl_poll_state(ncclComm_t comm, Clock::time_point deadline) {
  Backoff backoff;
  for (;;) {
    ncclResult_t state = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(comm, &state);
    if (r != ncclSuccess) return r;
    if (state != ncclInProgress) return state;
    if (Clock::now() >= deadline) return ncclInProgress;
    backoff.pause();
  }
}

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::init_rank(const ncclUniqueId& id, int rank, int size,
                                                                     int device,
                                                                     std::chrono::milliseconds timeout) {
  const std::string who = StrCat() << "NCCL rank " << rank << " of " << size << " (GPU " << device << ")";
  if (size < 1 || rank < 0 || rank >= size)
    return Status::Error(StrCat() << who << ": rank must be in [0, size)");
  if (cudaError_t e = cudaSetDevice(device); e != cudaSuccess)
    return cuda_error_status(e, "cudaSetDevice(device)", __FILE__, __LINE__).with_context(who);

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // init and collectives return at once; we poll with a timeout
  ncclComm_t comm = nullptr;
  const auto deadline = Clock::now() + timeout;
  ncclResult_t r = ncclCommInitRankConfig(&comm, size, id, rank, &config);
  if (r == ncclInProgress && comm != nullptr) r = nccl_poll_state(comm, deadline);
  if (r == ncclSuccess) return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(comm, rank, size, device, timeout));

  std::string detail = comm ? last_error(comm) : std::string();
  if (comm) (void)ncclCommAbort(comm);
  if (r == ncclInProgress)
    return Status::Error(StrCat() << who << ": communicator not ready within " << timeout.count()
                                  << " ms (a rank did not join: check that every rank started and can "
                                     "reach rank 0); aborted");
  return Status::Error(StrCat() << who << ": ncclCommInitRankConfig failed: " << ncclGetErrorString(r) << detail);
}

NcclCommunicator::~NcclCommunicator() {
  if (!comm_) return;
  DeviceRestorer restore;
  // Finalize flushes this rank's work (non-blocking: polled), then destroy
  // frees it; a finalize that fails or hangs (a dead peer) aborts instead.
  ncclResult_t r = ncclCommFinalize(comm_);
  if (r == ncclInProgress) r = nccl_poll_state(comm_, Clock::now() + timeout_);
  if (r == ncclSuccess) {
    (void)ncclCommDestroy(comm_);
  } else {
    (void)ncclCommAbort(comm_);
  }
  comm_ = nullptr;
}

void NcclCommunicator::abort() {
  if (!comm_) return;
  if (abort_reason_.empty()) abort_reason_ = "aborted on request";
  abort_comm();
}

void NcclCommunicator::abort_comm() {
  if (!comm_) return;
  DeviceRestorer restore;
  (void)ncclCommAbort(comm_);
  comm_ = nullptr;
}

std::string NcclCommunicator::who() const {
  return StrCat() << "NCCL rank " << rank_ << " of " << size_ << " (GPU " << device_ << ")";
}

Status NcclCommunicator::aborted_error(const char* what) const {
  return Status::Error(StrCat() << who() << ": " << what << " on a communicator aborted earlier ("
                                << abort_reason_ << ")");
}

Status NcclCommunicator::fail(const char* what, ncclResult_t result) {
  // Arguments are checked before NCCL sees them, so any NCCL error (which a
  // non-blocking communicator also keeps as its state) ends the communicator.
  abort_reason_ = StrCat() << who() << ": " << what << " failed: " << ncclGetErrorString(result)
                           << last_error(comm_);
  abort_comm();
  return Status::Error(abort_reason_ + "; communicator aborted");
}

Status NcclCommunicator::settle(const char* what, ncclResult_t result) {
  if (result == ncclInProgress) result = nccl_poll_state(comm_, Clock::now() + timeout_);
  if (result == ncclSuccess) return Status::Ok();
  if (result == ncclInProgress) {
    std::string msg = StrCat() << who() << ": " << what << " not enqueued within " << timeout_.count()
                               << " ms (a peer rank is gone or out of step); communicator aborted";
    abort_reason_ = msg;
    abort_comm();
    return Status::Error(msg);
  }
  return fail(what, result);
}

Status NcclCommunicator::all_reduce_sum(void* data, DType dtype, size_t n, cudaStream_t stream) {
  return all_reduce_sum(data, data, dtype, n, stream);
}

Status NcclCommunicator::all_reduce_sum(const void* in, void* out, DType dtype, size_t n, cudaStream_t stream) {
  if (!comm_) return aborted_error("all_reduce_sum");
  auto type = reduce_type(dtype);
  if (!type)
    return Status::Error(StrCat() << who() << ": all_reduce_sum of " << dtype_name(dtype)
                                  << " is not supported (bf16, f16, f32)");
  if (n == 0) return Status::Ok();
  if (in == nullptr || out == nullptr)
    return Status::Error(StrCat() << who() << ": all_reduce_sum of " << n << " elements with a null buffer");
  if (n > SIZE_MAX / dtype_size(dtype))
    return Status::Error(StrCat() << who() << ": all_reduce_sum of " << n << " elements overflows");
  const size_t bytes = n * dtype_size(dtype);
  const auto in_at = reinterpret_cast<uintptr_t>(in);
  const auto out_at = reinterpret_cast<uintptr_t>(out);
  if (in_at != out_at && in_at < out_at + bytes && out_at < in_at + bytes)
    return Status::Error(StrCat() << who() << ": all_reduce_sum input and output overlap without being equal");
  return settle("ncclAllReduce", ncclAllReduce(in, out, n, *type, ncclSum, comm_, stream));
}

Status NcclCommunicator::all_gather(const void* in, DType dtype, size_t n, void* out, cudaStream_t stream) {
  if (!comm_) return aborted_error("all_gather");
  if (n == 0) return Status::Ok();
  if (in == nullptr || out == nullptr)
    return Status::Error(StrCat() << who() << ": all_gather of " << n << " elements with a null buffer");
  const size_t esize = dtype_size(dtype);
  if (n > SIZE_MAX / esize / static_cast<size_t>(size_))
    return Status::Error(StrCat() << who() << ": all_gather of " << n << " x " << size_ << " elements overflows");
  const size_t bytes = n * esize;
  // In place is rank r's slice of `out`; any other overlap is an error.
  const auto in_at = reinterpret_cast<uintptr_t>(in);
  const auto out_at = reinterpret_cast<uintptr_t>(out);
  const bool in_place = in_at == out_at + static_cast<uintptr_t>(rank_) * bytes;
  const bool overlaps = in_at < out_at + bytes * size_ && out_at < in_at + bytes;
  if (overlaps && !in_place)
    return Status::Error(StrCat() << who() << ": all_gather input overlaps the output other than at rank "
                                  << rank_ << "'s slice");
  auto [type, per_element] = gather_type(dtype);
  return settle("ncclAllGather", ncclAllGather(in, out, n * per_element, type, comm_, stream));
}

template <typename Query>
Status NcclCommunicator::wait_until_done(Query query, const char* what, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  Backoff backoff;
  for (;;) {
    const cudaError_t q = query();
    ncclResult_t state = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(comm_, &state);
    if (r != ncclSuccess) return fail("ncclCommGetAsyncError", r);
    if (state != ncclSuccess && state != ncclInProgress) return fail("a collective", state);
    if (q == cudaSuccess) return Status::Ok();
    if (q != cudaErrorNotReady) {
      Status st = cuda_error_status(q, what, __FILE__, __LINE__);
      abort_reason_ = StrCat() << who() << ": " << st.message();
      abort_comm();
      return Status::Error(abort_reason_ + "; communicator aborted");
    }
    if (Clock::now() >= deadline) {
      abort_reason_ = StrCat() << who() << ": collectives did not complete within " << timeout.count()
                               << " ms (--dist-timeout): a peer rank is gone or out of step";
      abort_comm();
      return Status::Error(abort_reason_ + "; communicator aborted");
    }
    backoff.pause();
  }
}

Status NcclCommunicator::wait(cudaStream_t stream, std::chrono::milliseconds timeout) {
  if (!comm_) return aborted_error("wait");
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  DS_CUDA_RETURN_IF_ERROR(cudaStreamIsCapturing(stream, &capture));
  if (capture != cudaStreamCaptureStatusNone)
    return Status::Error(StrCat() << who() << ": wait() on a stream that is being captured into a CUDA graph");
  return wait_until_done([stream] { return cudaStreamQuery(stream); }, "cudaStreamQuery", timeout);
}

Status NcclCommunicator::wait_event(cudaEvent_t event, std::chrono::milliseconds timeout) {
  if (!comm_) return aborted_error("wait_event");
  if (event == nullptr) return Status::Error(StrCat() << who() << ": wait_event() without an event");
  return wait_until_done([event] { return cudaEventQuery(event); }, "cudaEventQuery", timeout);
}

}  // namespace ds::cuda
