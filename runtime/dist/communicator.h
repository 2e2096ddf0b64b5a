// Collectives between the ranks of one tensor-parallel group. Every rank calls
// the same collectives in the same order; each call blocks until all ranks have
// taken part or the group's timeout passes (then it returns an error naming the
// rank, the collective and the timeout; the group is unusable afterwards).
//
// Backed by Gloo (runtime/dist/gloo_communicator.cpp) when dsrt is built with
// it (DS_ENABLE_GLOO); without Gloo the factories return a clear error.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/common/status.h"

namespace ds {

struct DistInitOptions;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Every rank passes the same n; n == 0 returns at once on every rank.
  // In place: data[i] = sum over ranks of data[i] (n floats on every rank).
  virtual Status all_reduce_sum(float* data, size_t n) = 0;
  // out[r * n + i] = rank r's in[i]; `out` holds size() * n floats.
  virtual Status all_gather(const float* in, size_t n, float* out) = 0;
  // Root's `bytes` replace every other rank's (any length; sizes travel first).
  virtual Status broadcast(std::string& bytes, int root) = 0;
  // Same, but a receiver waits up to `first_wait` for the message to start
  // (an idle follower waiting for the next step); the rest uses the timeout.
  virtual Status broadcast(std::string& bytes, int root, std::chrono::milliseconds first_wait) = 0;
  virtual Status barrier() = 0;
  // True once a collective failed (peer gone, timeout): the group is unusable.
  virtual bool broken() const = 0;
  // How a multi-process group was joined (connect_group), else null.
  virtual const DistInitOptions* dist_init() const { return nullptr; }
};

struct CommOptions {
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};  // per collective and for connecting
  std::string hostname = "127.0.0.1";                           // interface the TCP transport binds
};

// True when this dsrt was built with a collective backend.
bool have_collectives();

// `size` ranks inside this process (one per thread): connects them through an
// in-memory store over loopback TCP. Element r is rank r.
Result<std::vector<std::unique_ptr<Communicator>>> create_local_group(int size, const CommOptions& options);

// One process per rank: `size` processes (possibly on several hosts) meet at
// `init_addr` ("HOST:PORT"), where rank 0 serves the rendezvous key-value store
// (only the addresses are exchanged there; collectives go rank to rank).
struct DistInitOptions {
  int rank = 0;
  int size = 1;
  std::string init_addr;  // HOST:PORT
  CommOptions comm;       // comm.hostname: this rank's transport interface
};
Result<std::unique_ptr<Communicator>> connect_group(const DistInitOptions& options);

// Several tensor-parallel ranks in each process of a multi-process group
// (--tp N over --nnodes K < N processes): process p holds ranks
// [p * local, (p + 1) * local) of a group of K * local ranks, one communicator
// each (element i is rank p * local + i), met through the rendezvous store that
// `process_group`'s rank 0 serves. Every process calls it once, with the same
// `local`; the ranks connect concurrently (one thread each).
Result<std::vector<std::unique_ptr<Communicator>>> connect_local_ranks(const Communicator& process_group, int local);

// Every rank passes the bytes of the plan it loaded; an error on every rank
// (naming the ranks) unless all ranks hold the same plan.
Status check_same_plan(Communicator& comm, std::string_view plan_bytes);

// Gathers rows of `n` floats along the last dim: `in` is [rows, n] on every rank,
// `out` becomes [rows, size * n] (rank r's columns at r * n). `scratch` is reused.
Status all_gather_rows(Communicator& comm, const float* in, int64_t rows, int64_t n, float* out,
                       std::vector<float>& scratch);

}  // namespace ds
