// Communicator over Gloo: TCP transport (one device per rank), full-mesh
// connection through a gloo::rendezvous store, Gloo's collectives.
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/hash_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include <exception>
#include <stdexcept>

#include "runtime/common/parallel_for.h"
#include "runtime/dist/communicator.h"
#include "runtime/dist/tcp_store.h"

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
    server_.reset();
  }
  void keep_server(std::unique_ptr<StoreServer> server) { server_ = std::move(server); }
  void set_dist_init(const DistInitOptions& o) {
    init_ = o;
    joined_ = true;
  }
  const DistInitOptions* dist_init() const override { return joined_ ? &init_ : nullptr; }

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

  Status broadcast(std::string& bytes, int root) override { return broadcast(bytes, root, options_.timeout); }

  bool broken() const override { return !broken_.empty(); }

  Status broadcast(std::string& bytes, int root, std::chrono::milliseconds first_wait) override {
    if (root < 0 || root >= size())
      return Status::Error(StrCat() << "broadcast root " << root << " out of range for " << size() << " ranks");
    uint64_t len = bytes.size();
    DS_RETURN_IF_ERROR(guarded("broadcast (size)", 1, [&] {
      gloo::BroadcastOptions opts(context_);
      opts.setOutput(&len, 1);
      opts.setRoot(root);
      opts.setTimeout(first_wait);
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
  std::unique_ptr<StoreServer> server_;  // rank 0 of a multi-process group
  DistInitOptions init_;  // how connect_group joined it (joined_)
  bool joined_ = false;
};

// gloo::rendezvous::Store over our TCP store client (Gloo reports store
// failures by exception; connect() turns them into a Status).
class ClientStore : public gloo::rendezvous::Store {
 public:
  explicit ClientStore(StoreClient& c) : c_(c) {}
  void set(const std::string& key, const std::vector<char>& data) override {
    Status s = c_.set(key, std::string(data.begin(), data.end()));
    if (!s.ok()) throw std::runtime_error(s.message());
  }
  std::vector<char> get(const std::string& key) override {
    auto v = c_.get(key);
    if (!v.ok()) throw std::runtime_error(v.status().message());
    return std::vector<char>(v->begin(), v->end());
  }
  void wait(const std::vector<std::string>& keys) override {
    for (const std::string& k : keys) get(k);
  }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds&) override { wait(keys); }

 private:
  StoreClient& c_;
};

// Creates rank `rank`'s device and connects it to the others through `store`.
Result<std::unique_ptr<GlooCommunicator>> connect(gloo::rendezvous::Store& store, int rank, int size,
                                                  const CommOptions& options) {
  try {
    gloo::transport::tcp::attr attr;
    attr.hostname = options.hostname;
    std::shared_ptr<gloo::transport::Device> device = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(rank, size);
    context->setTimeout(options.timeout);
    context->connectFullMesh(store, device);
    return std::make_unique<GlooCommunicator>(std::move(device), std::move(context), options);
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
  std::vector<Result<std::unique_ptr<GlooCommunicator>>> results;
  results.reserve(static_cast<size_t>(size));
  for (int r = 0; r < size; ++r) results.emplace_back(Status::Error("not connected"));
  parallel_for_each(static_cast<size_t>(size),
                    [&](size_t r) { results[r] = connect(store, static_cast<int>(r), size, options); });
  std::vector<std::unique_ptr<Communicator>> group;
  for (auto& r : results) {
    if (!r.ok()) return r.status();
    group.push_back(std::unique_ptr<Communicator>(std::move(r).value()));
  }
  return group;
}

Result<std::unique_ptr<Communicator>> connect_group(const DistInitOptions& o) {
  if (o.size < 1 || o.rank < 0 || o.rank >= o.size)
    return Status::Error(StrCat() << "rank " << o.rank << " out of range for " << o.size << " ranks (--node-rank, --nnodes)");
  if (o.comm.timeout.count() <= 0) return Status::Error("--dist-timeout must be positive");
  std::string host;
  int port = 0;
  DS_RETURN_IF_ERROR(parse_host_port(o.init_addr, host, port));
  std::unique_ptr<StoreServer> server;
  if (o.rank == 0) {
    DS_ASSIGN_OR_RETURN(server, StoreServer::start(host, port));
  }
  auto client = StoreClient::connect(host, port, o.comm.timeout);
  if (!client.ok())
    return client.status().with_context(StrCat() << "rank " << o.rank << "/" << o.size);
  ClientStore store(**client);
  DS_ASSIGN_OR_RETURN(auto comm, connect(store, o.rank, o.size, o.comm));
  comm->keep_server(std::move(server));
  comm->set_dist_init(o);
  return std::unique_ptr<Communicator>(std::move(comm));
}

Result<std::vector<std::unique_ptr<Communicator>>> connect_local_ranks(const Communicator& process_group, int local) {
  const DistInitOptions* o = process_group.dist_init();
  if (o == nullptr) return Status::Error("ranks per process: the process group was not joined with connect_group");
  if (local < 1) return Status::Error(StrCat() << "ranks per process " << local << " must be at least 1");
  std::string host;
  int port = 0;
  DS_RETURN_IF_ERROR(parse_host_port(o->init_addr, host, port));
  const int world = o->size * local;
  std::vector<Result<std::unique_ptr<GlooCommunicator>>> results;
  for (int i = 0; i < local; ++i) results.emplace_back(Status::Error("not connected"));
  parallel_for_each(static_cast<size_t>(local), [&](size_t i) {
    const int rank = o->rank * local + static_cast<int>(i);
    auto client = StoreClient::connect(host, port, o->comm.timeout);
    if (!client.ok()) {
      results[i] = client.status().with_context(StrCat() << "rank " << rank << "/" << world);
      return;
    }
    ClientStore store(**client);
    // Keys apart from the process group's own rendezvous.
    gloo::rendezvous::PrefixStore prefixed(StrCat() << "ranks" << world, store);
    results[i] = connect(prefixed, rank, world, o->comm);
  });
  std::vector<std::unique_ptr<Communicator>> group;
  for (auto& r : results) {
    if (!r.ok()) return r.status();
    group.push_back(std::unique_ptr<Communicator>(std::move(r).value()));
  }
  return group;
}

}  // namespace ds
