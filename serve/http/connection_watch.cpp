#include "serve/http/connection_watch.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace ds::http {

namespace {

// Address and port of a socket endpoint in httplib's textual form.
bool endpoint(const sockaddr_storage& ss, std::string* addr, int* port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    if (!inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf))) return false;
    *port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (!inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf))) return false;
    *port = ntohs(a->sin6_port);
  } else {
    return false;
  }
  *addr = buf;
  return true;
}

bool same_endpoint(int fd, bool peer, const std::string& want_addr, int want_port) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  const int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                      : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (rc != 0) return false;
  std::string addr;
  int port = -1;
  return endpoint(ss, &addr, &port) && port == want_port && addr == want_addr;
}

}  // namespace

ConnectionWatch::ConnectionWatch(std::string peer_addr, int peer_port, std::string local_addr, int local_port)
    : peer_addr_(std::move(peer_addr)),
      local_addr_(std::move(local_addr)),
      peer_port_(peer_port),
      local_port_(local_port) {}

bool ConnectionWatch::locate() {
  searched_ = true;
  if (peer_port_ <= 0 || local_port_ <= 0) return false;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return false;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    if (same_endpoint(static_cast<int>(fd), /*peer=*/true, peer_addr_, peer_port_) &&
        same_endpoint(static_cast<int>(fd), /*peer=*/false, local_addr_, local_port_)) {
      fd_ = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return fd_ >= 0;
}

bool ConnectionWatch::peer_gone() {
  if (fd_ < 0 && (searched_ || !locate())) return false;
  char byte;
  const ssize_t n = recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;                                   // data waiting: alive
  if (n == 0) return true;                                   // orderly shutdown by the peer
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;  // reset, ...
}

}  // namespace ds::http
