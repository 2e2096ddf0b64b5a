// The rendezvous key-value store of a multi-process group: rank 0 serves it on
// the --dist-init-addr port, every rank (rank 0 included) is a client. Only
// the ranks' transport addresses go through it (Gloo's connectFullMesh); the
// collectives themselves are rank to rank. Debian's Gloo has no TCP store.
//
// Protocol (one TCP connection per client, requests answered in order):
//   'S' u32 key_len key u32 value_len value  -> (no reply)
//   'G' u32 key_len key                      -> u32 value_len value, once the key is set
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/common/status.h"

namespace ds {

class StoreServer {
 public:
  // Listens on host:port (SO_REUSEADDR); port 0 picks a free port.
  static Result<std::unique_ptr<StoreServer>> start(const std::string& host, int port);
  ~StoreServer();
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;
  int port() const { return port_; }

 private:
  StoreServer() = default;
  void accept_loop();
  void serve(int fd);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> kv_;
  std::vector<int> client_fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// A blocking client; every call fails after `timeout` (connect retries until then).
class StoreClient {
 public:
  static Result<std::unique_ptr<StoreClient>> connect(const std::string& host, int port,
                                                      std::chrono::milliseconds timeout);
  ~StoreClient();
  StoreClient(const StoreClient&) = delete;
  StoreClient& operator=(const StoreClient&) = delete;
  Status set(const std::string& key, const std::string& value);
  Result<std::string> get(const std::string& key);  // waits for the key

 private:
  StoreClient() = default;
  int fd_ = -1;
  std::string where_;
};

// "HOST:PORT" -> host, port (errors name the flag value).
Status parse_host_port(const std::string& addr, std::string& host, int& port);

}  // namespace ds
