#include "meta/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "common/log.h"
#include "meta/codec.h"

namespace tempfs {
namespace {

constexpr uint32_t kMagic = 0x31534654;  // "TFS1"
constexpr size_t kHeader = 16;           // len u32, magic u32, xxh64 u64
constexpr uint32_t kMaxRecord = 256u << 20;

Result<std::string> ReadWholeFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::string();
    return Status::FromErrno("open " + path);
  }
  std::string data;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = Status::FromErrno("read " + path);
      close(fd);
      return st;
    }
    if (n == 0) break;
    data.append(buf, n);
  }
  close(fd);
  return data;
}

Status WriteAll(int fd, std::string_view data, off_t off) {
  while (!data.empty()) {
    ssize_t n = pwrite(fd, data.data(), data.size(), off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write");
    }
    data.remove_prefix(n);
    off += n;
  }
  return Status::Ok();
}

}  // namespace

std::string FrameRecord(std::string_view record) {
  Encoder e;
  e.U32(static_cast<uint32_t>(record.size()));
  e.U32(kMagic);
  e.U64(XXH64(record.data(), record.size(), 0));
  e.buffer().append(record);
  return std::move(e.buffer());
}

size_t ForEachRecord(std::string_view data, const Journal::RecordFn& fn) {
  size_t off = 0;
  while (data.size() - off >= kHeader) {
    Decoder d(data.substr(off, kHeader));
    uint32_t len = d.U32();
    uint32_t magic = d.U32();
    uint64_t sum = d.U64();
    if (magic != kMagic || len > kMaxRecord || len > data.size() - off - kHeader) break;
    std::string_view rec = data.substr(off + kHeader, len);
    if (XXH64(rec.data(), rec.size(), 0) != sum) break;
    fn(rec);
    off += kHeader + len;
  }
  return off;
}

Result<std::unique_ptr<Journal>> Journal::Open(const std::string& dir, const RecordFn& apply) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno("mkdir " + dir);
  auto snap = ReadWholeFile(dir + "/snapshot");
  if (!snap.ok()) return snap.status();
  size_t valid = ForEachRecord(*snap, apply);
  if (valid != snap->size()) {
    // A snapshot is written whole and renamed into place: a bad one is damage, not a torn write.
    return Status::Err(EIO, "snapshot " + dir + "/snapshot is damaged at byte " + std::to_string(valid));
  }
  auto jdata = ReadWholeFile(dir + "/journal");
  if (!jdata.ok()) return jdata.status();
  size_t jvalid = ForEachRecord(*jdata, apply);
  int fd = open((dir + "/journal").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("open " + dir + "/journal");
  std::unique_ptr<Journal> j(new Journal(dir, fd));
  j->write_off_ = jvalid;
  j->allocated_ = jdata->size();
  // Whatever lies past the valid prefix is a torn record or preallocated
  // zeros; zero it so that no stale bytes can follow a later record.
  if (jdata->size() > jvalid) {
    std::string zeros(jdata->size() - jvalid, '\0');
    Status st = WriteAll(fd, zeros, jvalid);
    if (!st.ok()) return st;
  }
  Status st = j->Preallocate(kReserve);
  if (!st.ok()) TLOG_WARN("journal: cannot preallocate: %s", st.ToString().c_str());
  return j;
}

Journal::~Journal() {
  if (fd_ >= 0) close(fd_);
}

Status Journal::Preallocate(uint64_t need) {
  if (write_off_ + need <= allocated_) return Status::Ok();
  uint64_t target = write_off_ + need + kChunk;
  if (fallocate(fd_, 0, allocated_, target - allocated_) != 0) {
    return Status::FromErrno("fallocate journal");
  }
  allocated_ = target;
  return Status::Ok();
}

Status Journal::Append(std::string_view record, bool frees_space) {
  std::string framed = FrameRecord(record);
  Status st = Preallocate(framed.size() + kReserve);
  if (!st.ok()) {
    // Out of space ahead of us: only records that free space may dip into the reserve.
    if (!frees_space) return Status::Err(ENOSPC, "metadata journal full");
  }
  st = WriteAll(fd_, framed, write_off_);
  if (!st.ok()) return st;
  write_off_ += framed.size();
  if (write_off_ > allocated_) allocated_ = write_off_;
  return Status::Ok();
}

Status Journal::Sync() {
  if (fdatasync(fd_) != 0) return Status::FromErrno("fdatasync journal");
  return Status::Ok();
}

Status Journal::Compact(const DumpFn& dump) {
  std::string tmp = dir_ + "/snapshot.tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("open " + tmp);
  Status st;
  std::string buf;
  off_t off = 0;
  auto flush = [&] {
    if (st.ok() && !buf.empty()) st = WriteAll(fd, buf, off);
    off += buf.size();
    buf.clear();
  };
  dump([&](std::string_view rec) {
    buf += FrameRecord(rec);
    if (buf.size() > (1u << 20)) flush();
  });
  flush();
  if (st.ok() && fsync(fd) != 0) st = Status::FromErrno("fsync " + tmp);
  close(fd);
  if (st.ok() && rename(tmp.c_str(), (dir_ + "/snapshot").c_str()) != 0) {
    st = Status::FromErrno("rename snapshot");
  }
  if (!st.ok()) {
    unlink(tmp.c_str());
    return st;
  }
  int dfd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  // The snapshot now holds everything; replaying the old journal on top of it
  // would be harmless (it ends in the same state), so emptying it needs no care.
  if (ftruncate(fd_, 0) != 0) return Status::FromErrno("truncate journal");
  write_off_ = 0;
  allocated_ = 0;
  Status pst = Preallocate(kReserve);
  if (!pst.ok()) TLOG_WARN("journal: cannot preallocate: %s", pst.ToString().c_str());
  return Status::Ok();
}

}  // namespace tempfs
