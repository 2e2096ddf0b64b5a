// ConnectionWatch: notices that the client of a plain (non-streaming) request has
// gone away, so that its generation can be aborted and its KV pages freed at once.
//
// cpp-httplib 0.11 gives a handler no view of its socket (streaming handlers learn
// of a disconnect from failed writes; plain handlers learn nothing until they
// return). The accepted socket is found once by its two endpoints, which identify
// a TCP connection uniquely, among the process's open descriptors (Linux
// /proc/self/fd); afterwards a non-blocking MSG_PEEK tells whether the peer closed.
#pragma once

#include <string>

namespace ds::http {

class ConnectionWatch {
 public:
  // Endpoints as httplib reports them in Request (remote_addr/port, local_addr/port).
  ConnectionWatch(std::string peer_addr, int peer_port, std::string local_addr, int local_port);

  // True once the peer has closed or reset the connection. False while it is open,
  // and also when the socket could not be identified (then nothing is ever aborted).
  bool peer_gone();

 private:
  bool locate();

  std::string peer_addr_, local_addr_;
  int peer_port_, local_port_;
  int fd_ = -1;
  bool searched_ = false;
};

}  // namespace ds::http
