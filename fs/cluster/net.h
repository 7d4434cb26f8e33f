// Small socket helpers for the peer protocol: addresses, connecting with a
// bound, and whole reads and writes that give up after the socket's timeout.
#pragma once

#include <chrono>
#include <string>

#include "common/status.h"

namespace tempfs {

struct HostPort {
  std::string host;
  int port = 0;
  // HOST:PORT, [V6]:PORT.
  static Result<HostPort> Parse(const std::string& s);
  std::string ToString() const;
};

Result<int> Listen(const HostPort& addr);
// Connects within `timeout`; reads and writes on the socket then time out
// after `timeout` without progress.
Result<int> Connect(const HostPort& addr, std::chrono::milliseconds timeout);
Status ReadFull(int fd, void* buf, size_t n);
Status WriteFull(int fd, const void* buf, size_t n);
std::string PeerName(int fd);

}  // namespace tempfs
