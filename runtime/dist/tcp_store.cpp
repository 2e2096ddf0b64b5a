#include "runtime/dist/tcp_store.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ds {
namespace {

bool write_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool read_all(int fd, void* p, size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t r = ::recv(fd, c, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool read_string(int fd, std::string& s) {
  uint32_t n = 0;
  if (!read_all(fd, &n, 4) || n > (64u << 20)) return false;
  s.resize(n);
  return n == 0 || read_all(fd, s.data(), n);
}

bool write_string(int fd, const std::string& s) {
  const uint32_t n = static_cast<uint32_t>(s.size());
  return write_all(fd, &n, 4) && (n == 0 || write_all(fd, s.data(), n));
}

Result<addrinfo*> resolve(const std::string& host, int port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0 || !res)
    return Status::Error(StrCat() << "cannot resolve " << host << ":" << port << ": " << ::gai_strerror(rc));
  return res;
}

}  // namespace

Status parse_host_port(const std::string& addr, std::string& host, int& port) {
  const size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == addr.size())
    return Status::Error("--dist-init-addr '" + addr + "' must be HOST:PORT");
  host = addr.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  char* end = nullptr;
  const long p = std::strtol(addr.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p <= 0 || p > 65535) return Status::Error("--dist-init-addr '" + addr + "': bad port");
  port = static_cast<int>(p);
  return Status::Ok();
}

Result<std::unique_ptr<StoreServer>> StoreServer::start(const std::string& host, int port) {
  DS_ASSIGN_OR_RETURN(addrinfo * res, resolve(host, port, true));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> keep(res, &::freeaddrinfo);
  const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Error(StrCat() << "socket(): " << std::strerror(errno));
  std::unique_ptr<StoreServer> s(new StoreServer());
  s->listen_fd_ = fd;
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 64) != 0)
    return Status::Error(StrCat() << "rendezvous store: cannot listen on " << host << ":" << port << ": "
                                  << std::strerror(errno));
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  s->port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  s->acceptor_ = std::thread(&StoreServer::accept_loop, s.get());
  return s;
}

StoreServer::~StoreServer() {
  stop_ = true;
  cv_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : client_fds_) ::shutdown(fd, SHUT_RDWR);  // unblocks their reads
  }
  for (std::thread& t : threads_) t.join();
  for (int fd : client_fds_) ::close(fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void StoreServer::accept_loop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard<std::mutex> lock(mu_);
    client_fds_.push_back(fd);
    threads_.emplace_back(&StoreServer::serve, this, fd);
  }
}

void StoreServer::serve(int fd) {
  for (;;) {
    char op = 0;
    std::string key, value;
    if (!read_all(fd, &op, 1) || !read_string(fd, key)) return;
    if (op == 'S') {
      if (!read_string(fd, value)) return;
      {
        std::lock_guard<std::mutex> lock(mu_);
        kv_[key] = std::move(value);
      }
      cv_.notify_all();
    } else if (op == 'G') {
      {
        std::unique_lock<std::mutex> lock(mu_);
        while (!stop_ && !kv_.count(key)) cv_.wait_for(lock, std::chrono::milliseconds(100));
        if (stop_) return;
        value = kv_[key];
      }
      if (!write_string(fd, value)) return;
    } else {
      return;  // not our protocol: drop the connection
    }
  }
}

Result<std::unique_ptr<StoreClient>> StoreClient::connect(const std::string& host, int port,
                                                          std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last_error;
  for (;;) {
    DS_ASSIGN_OR_RETURN(addrinfo * res, resolve(host, port, false));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> keep(res, &::freeaddrinfo);
    const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Status::Error(StrCat() << "socket(): " << std::strerror(errno));
    if (::connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
      std::unique_ptr<StoreClient> c(new StoreClient());
      c->fd_ = fd;
      c->where_ = host + ":" + std::to_string(port);
      timeval tv{};
      tv.tv_sec = static_cast<long>(timeout.count() / 1000);
      tv.tv_usec = static_cast<long>((timeout.count() % 1000) * 1000);
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      return c;
    }
    last_error = std::strerror(errno);
    ::close(fd);
    if (std::chrono::steady_clock::now() >= deadline)
      return Status::Error(StrCat() << "cannot reach the rendezvous store at " << host << ":" << port << " within "
                                    << timeout.count() << " ms (" << last_error << "; is rank 0 running?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

StoreClient::~StoreClient() {
  if (fd_ >= 0) ::close(fd_);
}

Status StoreClient::set(const std::string& key, const std::string& value) {
  const char op = 'S';
  if (!write_all(fd_, &op, 1) || !write_string(fd_, key) || !write_string(fd_, value))
    return Status::Error(StrCat() << "rendezvous store " << where_ << ": cannot set '" << key << "': "
                                  << std::strerror(errno));
  return Status::Ok();
}

Result<std::string> StoreClient::get(const std::string& key) {
  const char op = 'G';
  std::string value;
  if (!write_all(fd_, &op, 1) || !write_string(fd_, key) || !read_string(fd_, value))
    return Status::Error(StrCat() << "rendezvous store " << where_ << ": no value for '" << key
                                  << "' (timed out or the store closed; a peer rank is missing)");
  return value;
}

}  // namespace ds
