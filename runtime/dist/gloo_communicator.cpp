// Communicator over Gloo: TCP transport (one device per rank), full-mesh
// connection through a gloo::rendezvous store, Gloo's collectives.
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/hash_store.h>
#include <gloo/transport/tcp/device.h>

#include <exception>
#include <thread>

#include "runtime/dist/communicator.h"

namespace ds {
namespace {

class GlooCommunicator : public Communicator {
 public:
  GlooCommunicator(std::shared_ptr<gloo::transport::Device> device, std::shared_ptr<gloo::rendezvous::Context> context,
                   const CommOptions& options)
      : device_(std::move(device)), context_(std::move(context)), options_(options) {}
  ~GlooCommunicator() override {
    context_.reset();  // pairs close before their device's event loop stops
    device_.reset();
  }

  int rank() const override { return context_->rank; }
  int size() const override { return context_->size; }

  // n == 0 is a no-op on every rank (the same step has the same sizes
  // everywhere); Gloo itself divides by the element count.
  Status all_reduce_sum(float* data, size_t n) override {
    if (n == 0) return Status::Ok();
    return guarded("all_reduce_sum", n, [&] {
      gloo::AllreduceOptions opts(context_);
      opts.setOutput(data, n);
      opts.setReduceFunction(
          static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
      opts.setTimeout(options_.timeout);
      gloo::allreduce(opts);
    });
  }

  Status all_gather(const float* in, size_t n, float* out) override {
    if (n == 0) return Status::Ok();
    return guarded("all_gather", n, [&] {
      gloo::AllgatherOptions opts(context_);
      opts.setInput(const_cast<float*>(in), n);
      opts.setOutput(out, n * static_cast<size_t>(context_->size));
      opts.setTimeout(options_.timeout);
      gloo::allgather(opts);
    });
  }

  Status broadcast(std::string& bytes, int root) override {
    if (root < 0 || root >= size())
      return Status::Error(StrCat() << "broadcast root " << root << " out of range for " << size() << " ranks");
    uint64_t len = bytes.size();
    DS_RETURN_IF_ERROR(guarded("broadcast (size)", 1, [&] {
      gloo::BroadcastOptions opts(context_);
      opts.setOutput(&len, 1);
      opts.setRoot(root);
      opts.setTimeout(options_.timeout);
      gloo::broadcast(opts);
    }));
    if (rank() != root) bytes.resize(static_cast<size_t>(len));
    if (len == 0) return Status::Ok();
    return guarded("broadcast", len, [&] {
      gloo::BroadcastOptions opts(context_);
      opts.setOutput(reinterpret_cast<uint8_t*>(bytes.data()), bytes.size());
      opts.setRoot(root);
      opts.setTimeout(options_.timeout);
      gloo::broadcast(opts);
    });
  }

  Status barrier() override {
    return guarded("barrier", 0, [&] {
      gloo::BarrierOptions opts(context_);
      opts.setTimeout(options_.timeout);
      gloo::barrier(opts);
    });
  }

 private:
  // Gloo reports failures (peer gone, timeout) by throwing; after one the
  // group's pairs are in an unknown state, so every later call fails too.
  template <typename F>
  Status guarded(const char* what, size_t n, F&& f) {
    if (!broken_.empty())
      return Status::Error(StrCat() << "rank " << rank() << "/" << size() << ": " << what
                                    << " after an earlier collective failed: " << broken_);
    try {
      f();
      return Status::Ok();
    } catch (const std::exception& e) {
      broken_ = StrCat() << what << " of " << n << " elements failed (timeout " << options_.timeout.count()
                         << " ms; a peer rank stopped or is unreachable): " << e.what();
      return Status::Error(StrCat() << "rank " << rank() << "/" << size() << ": " << broken_);
    }
  }

  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::rendezvous::Context> context_;
  CommOptions options_;
  std::string broken_;
};

// Creates rank `rank`'s device and connects it to the others through `store`.
Result<std::unique_ptr<Communicator>> connect(gloo::rendezvous::Store& store, int rank, int size,
                                              const CommOptions& options) {
  try {
    gloo::transport::tcp::attr attr;
    attr.hostname = options.hostname;
    std::shared_ptr<gloo::transport::Device> device = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(rank, size);
    context->setTimeout(options.timeout);
    context->connectFullMesh(store, device);
    return std::unique_ptr<Communicator>(new GlooCommunicator(std::move(device), std::move(context), options));
  } catch (const std::exception& e) {
    return Status::Error(StrCat() << "rank " << rank << "/" << size << ": connecting the group on "
                                  << options.hostname << " failed (timeout " << options.timeout.count()
                                  << " ms): " << e.what());
  }
}

}  // namespace

bool have_collectives() { return true; }

Result<std::vector<std::unique_ptr<Communicator>>> create_local_group(int size, const CommOptions& options) {
  if (size < 1) return Status::Error(StrCat() << "group size " << size << " must be at least 1");
  if (options.timeout.count() <= 0) return Status::Error("collective timeout must be positive");
  gloo::rendezvous::HashStore store;
  std::vector<Result<std::unique_ptr<Communicator>>> results;
  results.reserve(static_cast<size_t>(size));
  for (int r = 0; r < size; ++r) results.emplace_back(Status::Error("not connected"));
  {
    std::vector<std::thread> threads;
    for (int r = 0; r < size; ++r)
      threads.emplace_back([&, r] { results[static_cast<size_t>(r)] = connect(store, r, size, options); });
    for (std::thread& t : threads) t.join();
  }
  std::vector<std::unique_ptr<Communicator>> group;
  for (auto& r : results) {
    if (!r.ok()) return r.status();
    group.push_back(std::move(r).value());
  }
  return group;
}

}  // namespace ds
