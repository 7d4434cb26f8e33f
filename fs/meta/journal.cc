#include "meta/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include <algorithm>

#include "common/log.h"
#include "meta/codec.h"

namespace tempfs {
namespace {

constexpr uint32_t kMagic = 0x31534654;  // "TFS1"
constexpr size_t kHeader = 16;           // len u32, magic u32, xxh64 u64
constexpr uint32_t kMaxRecord = 256u << 20;

// A file that is not there reads as empty: a new store has neither.
Result<std::string> ReadIfThere(Env* env, const std::string& path) {
  auto data = ReadWholeFile(env, path);
  if (!data.ok() && data.err() == ENOENT) return std::string();
  return data;
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

Result<std::unique_ptr<Journal>> Journal::Open(const std::string& dir, const RecordFn& apply, Env* env) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno("mkdir " + dir);
  auto snap = ReadIfThere(env, dir + "/snapshot");
  if (!snap.ok()) return snap.status();
  size_t valid = ForEachRecord(*snap, apply);
  if (valid != snap->size()) {
    // A snapshot is written whole and renamed into place: a bad one is damage, not a torn write.
    return Status::Err(EIO, "snapshot " + dir + "/snapshot is damaged at byte " + std::to_string(valid));
  }
  auto jdata = ReadIfThere(env, dir + "/journal");
  if (!jdata.ok()) return jdata.status();
  size_t jvalid = ForEachRecord(*jdata, apply);
  int fd = env->Open(dir + "/journal", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("open " + dir + "/journal");
  std::unique_ptr<Journal> j(new Journal(dir, fd, env));
  j->write_off_ = jvalid;
  j->allocated_ = jdata->size();
  Status st = j->ClearTail(std::string_view(*jdata).substr(jvalid));
  if (!st.ok()) return st;
  st = j->Preallocate(kReserve);
  if (!st.ok()) TLOG_WARN("journal: cannot preallocate: %s", st.ToString().c_str());
  return j;
}

Status Journal::ClearTail(std::string_view tail) {
  // Whatever lies past the valid prefix is a torn record or preallocated
  // zeros. Zeros are left alone: rewriting them would need nothing, but a
  // store that filled up must open without writing what it need not.
  size_t torn = tail.find_last_not_of('\0');
  if (torn == std::string_view::npos) return Status::Ok();
  std::string zeros(torn + 1, '\0');
  Status st = WriteFully(env_, fd_, zeros, static_cast<off_t>(write_off_));
  if (st.ok()) return st;
  // Cutting the file there also keeps stale bytes from following a later
  // record, and frees space instead of needing it; only the reserve is lost.
  TLOG_WARN("journal: cannot clear the torn tail (%s); cutting the journal at byte %llu", st.ToString().c_str(),
            static_cast<unsigned long long>(write_off_));
  if (env_->Ftruncate(fd_, static_cast<off_t>(write_off_)) != 0) return Status::FromErrno("truncate journal");
  allocated_ = write_off_;
  return Status::Ok();
}

Journal::~Journal() {
  if (fd_ >= 0) env_->Close(fd_);
}

Status Journal::Preallocate(uint64_t need) {
  if (write_off_ + need <= allocated_) return Status::Ok();
  uint64_t target = write_off_ + need + kChunk;
  if (env_->Fallocate(fd_, 0, static_cast<off_t>(allocated_), static_cast<off_t>(target - allocated_)) != 0) {
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
  st = WriteFully(env_, fd_, framed, static_cast<off_t>(write_off_));
  if (!st.ok()) return st;
  write_off_ += framed.size();
  if (write_off_ > allocated_) allocated_ = write_off_;
  return Status::Ok();
}

Status Journal::Sync() {
  if (env_->Fdatasync(fd_) != 0) return Status::FromErrno("fdatasync journal");
  return Status::Ok();
}

Status Journal::Compact(const DumpFn& dump) {
  std::string tmp = dir_ + "/snapshot.tmp";
  int fd = env_->Open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("open " + tmp);
  Status st;
  std::string buf;
  off_t off = 0;
  auto flush = [&] {
    if (st.ok() && !buf.empty()) st = WriteFully(env_, fd, buf, off);
    off += buf.size();
    buf.clear();
  };
  dump([&](std::string_view rec) {
    buf += FrameRecord(rec);
    if (buf.size() > (1u << 20)) flush();
  });
  flush();
  if (st.ok() && env_->Fsync(fd) != 0) st = Status::FromErrno("fsync " + tmp);
  env_->Close(fd);
  if (st.ok() && env_->Rename(tmp, dir_ + "/snapshot") != 0) {
    st = Status::FromErrno("rename snapshot");
  }
  if (!st.ok()) {
    env_->Unlink(tmp);
    // Tried again once about a snapshot's worth of records was logged:
    // soon on a store that rm -rf is emptying (the namespace shrinks), rarely
    // when a large namespace keeps failing (bounded rewriting).
    compact_at_ = write_off_ + std::clamp(static_cast<uint64_t>(off), kReserve / 4, kChunk);
    room_retry_at_ = compact_at_;
    return st;
  }
  compact_at_ = kCompactAt;
  room_retry_at_ = 0;
  int dfd = env_->Open(dir_, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    env_->Fsync(dfd);
    env_->Close(dfd);
  }
  return Restart();
}

Status Journal::Restart() {
  // The snapshot now holds everything; replaying the old journal on top of it
  // would be harmless (it ends in the same state), so emptying it needs no care.
  // Cutting the file to nothing and allocating again would hand the reserve to
  // whoever writes meanwhile (the store may be full right now), so the first
  // kReserve bytes stay allocated and only the records in them are zeroed,
  // from the front: a crash part way leaves a journal that starts with zeros,
  // which replays as empty.
  uint64_t keep = std::min(allocated_, kReserve);
  Status st = WriteFully(env_, fd_, std::string(std::min(write_off_, keep), '\0'), 0);
  if (!st.ok()) {
    // Allocated bytes take a rewrite on any sane file system; if this one
    // does not, an empty journal is still correct.
    TLOG_WARN("journal: cannot clear the old records (%s); emptying it", st.ToString().c_str());
    keep = 0;
  }
  if (env_->Ftruncate(fd_, static_cast<off_t>(keep)) != 0) return Status::FromErrno("truncate journal");
  write_off_ = 0;
  allocated_ = keep;
  Status pst = Preallocate(kReserve);
  if (!pst.ok()) TLOG_WARN("journal: cannot preallocate: %s", pst.ToString().c_str());
  return Status::Ok();
}

}  // namespace tempfs
