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

// Accept loops: waits for a connection on `listen_fd` until `stop_fd` becomes
// readable. Returns the accepted descriptor (close-on-exec), -1 when the
// caller should simply call again, or kAcceptStopped. Out of descriptors, it
// waits a little before returning -1, so a loop does not spin.
constexpr int kAcceptStopped = -2;
int AcceptUntilStopped(int listen_fd, int stop_fd);

}  // namespace tempfs
