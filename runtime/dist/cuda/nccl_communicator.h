// NcclCommunicator: DeviceCommunicator over one non-blocking NCCL
// communicator (one rank, one GPU). Every NCCL call that answers
// ncclInProgress is polled (ncclCommGetAsyncError) until it settles or the
// communicator's timeout passes; any failure aborts the communicator
// (ncclCommAbort) and returns an error naming the rank and the GPU, so a dead
// or out-of-step peer ends every rank within the timeout instead of hanging.
#pragma once

#include <nccl.h>

#include <chrono>
#include <memory>
#include <string>

#include "runtime/dist/cuda/device_communicator.h"

namespace ds::cuda {

class NcclCommunicator final : public DeviceCommunicator {
 public:
  // Creates rank `rank` of `size` on `device` (made the calling thread's
  // current device) from the group's unique id; a non-blocking init bounded by
  // `timeout`, aborted on failure.
  static Result<std::unique_ptr<NcclCommunicator>> init_rank(const ncclUniqueId& id, int rank, int size,
                                                             int device, std::chrono::milliseconds timeout);

  // Finalizes then destroys (aborts when finalizing fails or outlasts the timeout).
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int device() const override { return device_; }
  Status all_reduce_sum(void* data, DType dtype, size_t n, cudaStream_t stream) override;
  Status all_reduce_sum(const void* in, void* out, DType dtype, size_t n, cudaStream_t stream) override;
  Status all_gather(const void* in, DType dtype, size_t n, void* out, cudaStream_t stream) override;
  Status wait(cudaStream_t stream, std::chrono::milliseconds timeout) override;
  Status wait_event(cudaEvent_t event, std::chrono::milliseconds timeout) override;

  // True once the communicator was aborted (after an error or timeout).
  bool aborted() const override { return comm_ == nullptr; }
  // Aborts now (idempotent): pending collectives of this rank end at once.
  void abort() override;

 private:
  NcclCommunicator(ncclComm_t comm, int rank, int size, int device, std::chrono::milliseconds timeout)
      : comm_(comm), rank_(rank), size_(size), device_(device), timeout_(timeout) {}

  std::string who() const;
  // An error for `what` failing with `result`; aborts the communicator.
  Status fail(const char* what, ncclResult_t result);
  void abort_comm();
  // Settles the return of an NCCL call: ncclInProgress is polled until the
  // communicator leaves that state (bounded by timeout_).
  Status settle(const char* what, ncclResult_t result);
  Status aborted_error(const char* what) const;
  // wait() / wait_event(): polls `query` (cudaStreamQuery or cudaEventQuery)
  // and the communicator's asynchronous error until the work is done, an error
  // shows, or `timeout` passes (then the communicator is aborted).
  template <typename Query>
  Status wait_until_done(Query query, const char* what, std::chrono::milliseconds timeout);

  ncclComm_t comm_ = nullptr;
  int rank_ = 0;
  int size_ = 1;
  int device_ = 0;
  std::chrono::milliseconds timeout_;
  std::string abort_reason_;
};

// Polls `comm`'s asynchronous state until it is not ncclInProgress or
// `deadline` passes (then ncclInProgress is returned).
ncclResult_t nccl_poll_state(ncclComm_t comm, std::chrono::steady_clock::time_point deadline);

}  // namespace ds::cuda
