// Fetch: one copy of a remote file's content into the local store, running
// in its own thread. Readers may start at once: each waits only for the
// bytes it asks for, and gets only bytes the transport verified (see
// PeerTransport::Fetch). The copy lands in a ".part" file and gets the
// file's real name only once it is complete and its checksum matches, so a
// partial copy is never taken for a complete one.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

#include "common/status.h"
#include "meta/types.h"
#include "store/local_store.h"
#include "vfs/remote.h"

namespace tempfs {

class Fetch : public std::enable_shared_from_this<Fetch> {
 public:
  // `done` is called once, from the fetch thread, when the copy has ended
  // (result() is set), before finished() turns true for the waiters.
  Fetch(LocalStore& store, PeerTransport& transport, const Attr& attr,
        std::function<void(const Fetch&)> done);
  ~Fetch();

  // Creates the .part file and starts the copy.
  Status Start();
  // Opens the copy for reading; the descriptor stays valid (and complete)
  // after the copy is renamed into place.
  Result<int> OpenForRead();
  // Waits until bytes [0, end) are local, the copy failed, or `timeout`.
  Status WaitFor(uint64_t end, std::chrono::milliseconds timeout);
  // Waits until the copy is complete, checked and in place (or failed).
  Status WaitDone(std::chrono::milliseconds timeout);

  const Attr& attr() const { return attr_; }
  uint64_t bytes() const;
  std::chrono::milliseconds elapsed() const;
  bool finished() const;
  // The copy's outcome; meaningful once finished().
  Status result() const;

 private:
  void Run();

  LocalStore& store_;
  PeerTransport& transport_;
  const Attr attr_;
  std::function<void(const Fetch&)> done_;
  int fd_ = -1;
  int read_fd_ = -1;  // of the copy, for OpenForRead (valid after the rename)
  std::chrono::steady_clock::time_point start_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t ready_ = 0;   // guarded by mu_
  bool finished_ = false;  // guarded by mu_
  Status result_;        // guarded by mu_
  std::chrono::steady_clock::time_point end_;  // guarded by mu_
};

}  // namespace tempfs
