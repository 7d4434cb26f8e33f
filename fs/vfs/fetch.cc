#include "vfs/fetch.h"

#include <fcntl.h>
#include <unistd.h>

#include <thread>

#include <xxhash.h>

#include "common/log.h"

namespace tempfs {

Fetch::Fetch(LocalStore& store, PeerTransport& transport, const Attr& attr,
             std::function<void(const Fetch&)> done)
    : store_(store), transport_(transport), attr_(attr), done_(std::move(done)) {}

Fetch::~Fetch() {
  if (fd_ >= 0) close(fd_);
}

Status Fetch::Start() {
  auto fd = store_.CreatePart(attr_.ino);
  if (!fd.ok()) return fd.status();
  fd_ = *fd;
  start_ = std::chrono::steady_clock::now();
  std::thread([self = shared_from_this()] { self->Run(); }).detach();
  return Status::Ok();
}

Result<int> Fetch::OpenForRead() { return store_.OpenPart(attr_.ino, O_RDONLY); }

void Fetch::Run() {
  XXH64_state_t* h = XXH64_createState();
  XXH64_reset(h, 0);
  uint64_t off = 0;
  Status st = transport_.Fetch(attr_.owner, attr_.ino, attr_.version, attr_.size,
                               [&](const char* data, size_t len) -> Status {
    if (off + len > attr_.size) return Status::Err(EIO, "peer sent more than the file holds");
    size_t done = 0;
    while (done < len) {
      ssize_t n = pwrite(fd_, data + done, len - done, static_cast<off_t>(off + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno("write fetched data");
      }
      done += n;
    }
    XXH64_update(h, data, len);
    off += len;
    {
      std::lock_guard lock(mu_);
      ready_ = off;
    }
    cv_.notify_all();
    return Status::Ok();
  });
  uint64_t sum = XXH64_digest(h);
  XXH64_freeState(h);
  if (st.ok() && off != attr_.size) st = Status::Err(EIO, "peer sent " + std::to_string(off) + " of " + std::to_string(attr_.size) + " bytes");
  if (st.ok() && sum != attr_.checksum) st = Status::Err(EIO, "checksum mismatch");
  if (st.ok()) st = store_.CommitPart(attr_.ino, attr_.version);
  if (!st.ok()) {
    Status rst = store_.RemovePart(attr_.ino);
    (void)rst;
  }
  {
    std::lock_guard lock(mu_);
    finished_ = true;
    result_ = st;
    end_ = std::chrono::steady_clock::now();
  }
  cv_.notify_all();
  done_(*this);
}

Status Fetch::WaitFor(uint64_t end, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  bool ok = cv_.wait_for(lock, timeout, [&] { return finished_ || ready_ >= end; });
  if (ready_ >= end) return Status::Ok();
  if (finished_) return result_.ok() ? Status::Ok() : Status::Err(EIO, result_.ToString());
  (void)ok;
  return Status::Err(EIO, "timed out waiting for data from node " + std::to_string(attr_.owner));
}

uint64_t Fetch::bytes() const {
  std::lock_guard lock(mu_);
  return ready_;
}

std::chrono::milliseconds Fetch::elapsed() const {
  std::lock_guard lock(mu_);
  auto end = finished_ ? end_ : std::chrono::steady_clock::now();
  return std::chrono::duration_cast<std::chrono::milliseconds>(end - start_);
}

Status Fetch::result() const {
  std::lock_guard lock(mu_);
  return result_;
}

}  // namespace tempfs
