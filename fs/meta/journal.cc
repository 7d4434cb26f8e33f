#include "meta/journal.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <optional>

#include "common/log.h"
#include "meta/codec.h"

namespace tempfs {
namespace {

constexpr uint32_t kMagic = 0x31534654;         // "TFS1": an engine record
constexpr uint32_t kHeaderMagic = 0x48534654;   // "TFSH": a file's header
constexpr uint32_t kTrailerMagic = 0x54534654;  // "TFST": the snapshot's trailer
constexpr size_t kHeader = 16;                  // len u32, magic u32, xxh64 u64
constexpr uint32_t kMaxRecord = 256u << 20;
constexpr uint32_t kFormat = 2;
constexpr uint8_t kSnapshotFile = 1, kJournalFile = 2;

// Engine records keep seed 0 (their framing predates the other kinds); the
// others are seeded with their magic so that a kind cannot be mistaken for another.
uint64_t Checksum(uint32_t magic, std::string_view payload) {
  return XXH64(payload.data(), payload.size(), magic == kMagic ? 0 : magic);
}

std::string Frame(uint32_t magic, std::string_view payload) {
  Encoder e;
  e.U32(static_cast<uint32_t>(payload.size()));
  e.U32(magic);
  e.U64(Checksum(magic, payload));
  e.buffer().append(payload);
  return std::move(e.buffer());
}

struct FrameView {
  uint32_t magic = 0;
  std::string_view payload;
  size_t begin = 0, end = 0;
};

bool KnownMagic(uint32_t m) { return m == kMagic || m == kHeaderMagic || m == kTrailerMagic; }

std::optional<FrameView> FrameAt(std::string_view data, size_t off) {
  if (off > data.size() || data.size() - off < kHeader) return std::nullopt;
  Decoder d(data.substr(off, kHeader));
  uint32_t len = d.U32();
  uint32_t magic = d.U32();
  uint64_t sum = d.U64();
  if (!KnownMagic(magic) || len > kMaxRecord || len > data.size() - off - kHeader) return std::nullopt;
  std::string_view payload = data.substr(off + kHeader, len);
  if (Checksum(magic, payload) != sum) return std::nullopt;
  return FrameView{magic, payload, off, off + kHeader + len};
}

// The first offset at or after `from` where a valid frame begins, or npos.
size_t FindFrame(std::string_view data, size_t from) {
  for (size_t off = from; off + kHeader <= data.size(); off++) {
    uint32_t m;
    std::memcpy(&m, data.data() + off + 4, sizeof m);
    if (KnownMagic(m) && FrameAt(data, off)) return off;
  }
  return std::string_view::npos;
}

struct FileHeader {
  uint8_t kind = 0;
  uint64_t store_id = 0;
  uint64_t generation = 0;
};

std::string HeaderFrame(const FileHeader& h) {
  Encoder e;
  e.U32(kFormat);
  e.U8(h.kind);
  e.U64(h.store_id);
  e.U64(h.generation);
  return Frame(kHeaderMagic, e.buffer());
}

std::optional<FileHeader> HeaderAt0(std::string_view data, uint8_t kind) {
  auto f = FrameAt(data, 0);
  if (!f || f->magic != kHeaderMagic) return std::nullopt;
  Decoder d(f->payload);
  uint32_t format = d.U32();
  FileHeader h;
  h.kind = d.U8();
  h.store_id = d.U64();
  h.generation = d.U64();
  if (d.failed() || format != kFormat || h.kind != kind) return std::nullopt;
  return h;
}

std::string TrailerFrame(uint64_t generation, uint64_t records) {
  Encoder e;
  e.U64(generation);
  e.U64(records);
  return Frame(kTrailerMagic, e.buffer());
}

uint64_t NewStoreId() {
  uint64_t id = 0;
  if (getrandom(&id, sizeof id, 0) != sizeof id || id == 0) {
    id = static_cast<uint64_t>(time(nullptr)) * 1000003u ^ static_cast<uint64_t>(getpid());
  }
  return id;
}

// Missing files read as nullopt.
Result<std::optional<std::string>> ReadIfThere(Env* env, const std::string& path) {
  auto data = ReadWholeFile(env, path);
  if (!data.ok()) {
    if (data.err() == ENOENT) return std::optional<std::string>();
    return data.status();
  }
  return std::optional<std::string>(std::move(*data));
}

// Reports damage: strict modes stop at the first; recovery notes it and goes on.
class DamageLog {
 public:
  DamageLog(bool recover, ReplayReport* report) : recover_(recover), report_(report) {}
  Status Note(const std::string& line) {
    if (!recover_) return Status::Err(EUCLEAN, line);
    report_->damage.push_back(line);
    return Status::Ok();
  }

 private:
  bool recover_;
  ReplayReport* report_;
};

std::string Bytes(size_t from, size_t to) {
  return "bytes " + std::to_string(from) + "-" + std::to_string(to);
}

// Applies the engine records from *off on, counting them in *n; returns the
// first frame of another kind, or nullopt where no valid frame is.
std::optional<FrameView> ApplyRecords(std::string_view data, size_t* off, uint64_t* n,
                                      const Journal::RecordFn& apply) {
  for (;;) {
    auto f = FrameAt(data, *off);
    if (!f || f->magic != kMagic) return f;
    apply(f->payload);
    (*n)++;
    *off = f->end;
  }
}

// Replays the snapshot in `data`; `header` gets its header if it has one.
Status LoadSnapshot(const std::string& name, std::string_view data, const Journal::RecordFn& apply,
                    DamageLog& log, uint64_t* count, std::optional<FileHeader>* header) {
  *header = HeaderAt0(data, kSnapshotFile);
  size_t off = 0;
  if (*header) {
    off = FrameAt(data, 0)->end;
  } else if (auto f = FrameAt(data, 0); f && f->magic == kMagic) {
    // Records but no header: the format before headers and trailers.
    Status st = log.Note(name + ": written by an older tempfs (no header); fsck converts it");
    if (!st.ok()) return st;
  } else if (Status st = log.Note(name + ": no valid header (overwritten, or not a tempfs snapshot)"); !st.ok()) {
    return st;
  }
  uint64_t n = 0;
  for (;;) {
    auto f = ApplyRecords(data, &off, &n, apply);
    if (f && f->magic == kTrailerMagic) {
      Decoder d(f->payload);
      uint64_t gen = d.U64(), records = d.U64();
      Status st;
      if (!*header || gen != (*header)->generation || records != n) {
        st = log.Note(name + ": its trailer counts " + std::to_string(records) + " records of generation " +
                      std::to_string(gen) + ", " + std::to_string(n) + " were read");
      } else if (f->end != data.size()) {
        st = log.Note(name + ": " + std::to_string(data.size() - f->end) + " bytes after its end");
      }
      if (!st.ok()) return st;
      break;
    }
    if (f) {  // a second header
      if (Status st = log.Note(name + ": a header in the middle (byte " + std::to_string(off) + ")"); !st.ok()) {
        return st;
      }
      off = f->end;
      continue;
    }
    if (off >= data.size()) {
      Status st = log.Note(name + ": truncated after record " + std::to_string(n) + " (its trailer is missing)");
      if (!st.ok()) return st;
      break;
    }
    size_t next = FindFrame(data, off + 1);
    size_t to = next == std::string_view::npos ? data.size() : next;
    Status st = log.Note(name + ": record " + std::to_string(n + 1) + " unreadable (" + Bytes(off, to) + ")");
    if (!st.ok()) return st;
    if (next == std::string_view::npos) break;
    off = next;
  }
  *count = n;
  return Status::Ok();
}

struct JournalLoad {
  std::optional<FileHeader> header;
  bool folded = false;   // a journal the snapshot already holds
  size_t valid_end = 0;  // where the next record goes
  uint64_t records = 0;
};

// Replays the journal in `data` on top of the snapshot described by `snap`.
Status LoadJournal(const std::string& name, std::string_view data, const Journal::RecordFn& apply,
                   DamageLog& log, const std::optional<FileHeader>& snap, JournalLoad* out) {
  out->header = HeaderAt0(data, kJournalFile);
  size_t off = 0;
  if (!out->header) {
    Status st = log.Note(name + ": no valid header (zeroed, overwritten, or not a tempfs journal)");
    if (!st.ok()) return st;
  } else {
    off = FrameAt(data, 0)->end;
    const FileHeader& h = *out->header;
    Status st;
    if (snap && h.store_id != snap->store_id) {
      st = log.Note(name + ": belongs to another store than the snapshot beside it");
    } else if (snap && h.generation + 1 == snap->generation) {
      // The crash between a compaction's two renames: all of it is in the snapshot.
      out->folded = true;
      return Status::Ok();
    } else if (snap && h.generation != snap->generation) {
      st = log.Note(name + ": continues snapshot generation " + std::to_string(h.generation) +
                    ", but the snapshot is generation " + std::to_string(snap->generation));
    }
    if (!st.ok()) return st;
  }
  uint64_t n = 0;
  for (;;) {
    auto f = ApplyRecords(data, &off, &n, apply);
    if (f) {
      Status st = log.Note(name + ": a header or trailer in the middle (byte " + std::to_string(off) + ")");
      if (!st.ok()) return st;
      off = f->end;
      continue;
    }
    if (off >= data.size()) {
      if (out->header) {
        Status st = log.Note(name + ": ends right after record " + std::to_string(n) +
                             " (truncated: a journal always ends with zeros)");
        if (!st.ok()) return st;
      }
      break;
    }
    size_t next = FindFrame(data, off + 1);
    if (next == std::string_view::npos) break;  // a torn last record, or zeros
    Status st = log.Note(name + ": record " + std::to_string(n + 1) + " unreadable with valid records after it (" +
                         Bytes(off, next) + ")");
    if (!st.ok()) return st;
    off = next;
  }
  out->valid_end = off;
  out->records = n;
  return Status::Ok();
}

// Hard links of the damaged files in dir/damaged-TIMESTAMP/, kept for a person to look at.
Result<std::string> KeepDamaged(const std::string& dir) {
  char stamp[32];
  time_t now = time(nullptr);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  auto made = MakeFreshDir(dir + "/damaged-" + stamp, 100);
  if (!made.ok()) return made.status();
  const std::string& keep = *made;
  for (const char* f : {"snapshot", "journal"}) {
    std::string from = dir + "/" + f;
    if (link(from.c_str(), (keep + "/" + f).c_str()) != 0 && errno != ENOENT) {
      return Status::FromErrno("keep " + from);
    }
  }
  return keep;
}

}  // namespace

std::string FrameRecord(std::string_view record) { return Frame(kMagic, record); }

std::vector<RecordSpan> RecordSpans(std::string_view data) {
  std::vector<RecordSpan> out;
  size_t off = 0;
  if (auto f = FrameAt(data, 0); f && f->magic == kHeaderMagic) off = f->end;
  while (auto f = FrameAt(data, off)) {
    if (f->magic == kHeaderMagic) break;
    if (f->magic == kMagic) out.push_back(RecordSpan{f->begin, f->end});
    off = f->end;
  }
  return out;
}

size_t ForEachRecord(std::string_view data, const Journal::RecordFn& fn) {
  size_t off = 0;
  if (auto f = FrameAt(data, 0); f && f->magic == kHeaderMagic) off = f->end;
  while (auto f = FrameAt(data, off)) {
    if (f->magic == kHeaderMagic) break;
    if (f->magic == kMagic) fn(f->payload);
    off = f->end;
  }
  return off;
}

Result<std::unique_ptr<Journal>> Journal::Open(const std::string& dir, const RecordFn& apply, Env* env,
                                               const JournalOptions& options, ReplayReport* report) {
  using Mode = JournalOptions::Mode;
  bool recover = options.mode == Mode::kRecover;
  ReplayReport scratch;
  if (report == nullptr) report = &scratch;
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno("mkdir " + dir);
  auto snap = ReadIfThere(env, dir + "/snapshot");
  if (!snap.ok()) return snap.status();
  auto jdata = ReadIfThere(env, dir + "/journal");
  if (!jdata.ok()) return jdata.status();
  std::unique_ptr<Journal> j(new Journal(dir, env));
  DamageLog log(recover, report);

  if (!*snap && !*jdata) {
    if (options.store_has_data || recover) {
      Status st = log.Note(dir + ": snapshot and journal are missing" +
                           (options.store_has_data ? ", but the store holds data files" : ""));
      if (!st.ok()) return st;
    }
    j->store_id_ = NewStoreId();
    if (recover) {
      auto kept = KeepDamaged(dir);
      if (!kept.ok()) return kept.status();
      report->kept_in = *kept;
    }
    if (options.mode != Mode::kServe) return j;
    // A new store: an empty snapshot and journal of generation 1.
    Status st = j->Compact([](const RecordFn&) {});
    if (!st.ok()) return st;
    return j;
  }
  std::optional<FileHeader> sh;
  if (!*snap) {
    Status st = log.Note(dir + "/snapshot: missing (the journal beside it continues it)");
    if (!st.ok()) return st;
  } else {
    Status st = LoadSnapshot(dir + "/snapshot", **snap, apply, log, &report->snapshot_records, &sh);
    if (!st.ok()) return st;
  }
  JournalLoad jl;
  if (!*jdata) {
    // A new store's first compaction stopped between its renames: nothing to lose.
    bool creating = sh && report->snapshot_records == 0;
    if (!creating || recover) {
      Status st = log.Note(dir + "/journal: missing");
      if (!st.ok()) return st;
    }
    jl.folded = true;
  } else {
    Status st = LoadJournal(dir + "/journal", **jdata, apply, log, sh, &jl);
    if (!st.ok()) return st;
    report->journal_records = jl.records;
  }
  j->store_id_ = sh ? sh->store_id : jl.header ? jl.header->store_id : NewStoreId();
  j->generation_ = std::max(sh ? sh->generation : 0, jl.header ? jl.header->generation : 0);
  if (recover) {
    auto kept = KeepDamaged(dir);
    if (!kept.ok()) return kept.status();
    report->kept_in = *kept;
    return j;
  }
  if (options.mode == Mode::kCheck) return j;
  if (jl.folded) {
    // The journal on disk does not continue this snapshot: start one that does.
    int fd = -1;
    Status st = j->WriteEmptyJournal(false, &fd);
    if (st.ok()) st = j->Install(fd);
    if (!st.ok()) return st;
    return j;
  }
  int fd = env->Open(dir + "/journal", O_RDWR | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + dir + "/journal");
  j->fd_ = fd;
  j->write_off_ = jl.valid_end;
  j->allocated_ = jdata->value().size();
  if (Status st = j->ClearTail(std::string_view(**jdata).substr(jl.valid_end)); !st.ok()) return st;
  Status st = j->Preallocate(kReserve);
  if (!st.ok()) TLOG_WARN("journal: cannot preallocate: %s", st.ToString().c_str());
  return j;
}

Status Journal::ClearTail(std::string_view tail) {
  // Whatever lies past the valid prefix is a torn record or preallocated
  // zeros. The torn bytes are zeroed, and at least one frame header must
  // follow the records (see the header comment). Zeros already there are
  // left alone: a store that filled up must open without writing what it
  // need not.
  size_t torn = tail.find_last_not_of('\0');
  size_t dirty = torn == std::string_view::npos ? 0 : torn + 1;
  if (dirty > 0) TLOG_INFO("journal: dropped a torn last record (a crash while it was written)");
  size_t zero = std::max(dirty, kHeader);
  if (dirty == 0 && tail.size() >= kHeader) return Status::Ok();
  Status st = WriteFully(env_, fd_, std::string(zero, '\0'), static_cast<off_t>(write_off_));
  if (st.ok()) {
    allocated_ = std::max(allocated_, write_off_ + zero);
    return st;
  }
  // Cutting the file at the records and growing it by one frame header (a
  // hole, which reads as zeros) frees space instead of needing it; only the
  // reserve is lost. A crash between the two calls leaves a journal that
  // ends right after a record: refused as truncated, never a silent loss.
  TLOG_WARN("journal: cannot clear the torn tail (%s); cutting the journal at byte %llu", st.ToString().c_str(),
            static_cast<unsigned long long>(write_off_));
  if (env_->Ftruncate(fd_, static_cast<off_t>(write_off_)) != 0 ||
      env_->Ftruncate(fd_, static_cast<off_t>(write_off_ + kHeader)) != 0) {
    return Status::FromErrno("truncate journal");
  }
  allocated_ = write_off_ + kHeader;
  return Status::Ok();
}

Journal::~Journal() {
  if (fd_ >= 0) env_->Close(fd_);
}

Status Journal::Preallocate(uint64_t need) {
  if (write_off_ + need <= allocated_) return Status::Ok();
  // A chunk ahead, or nothing: the chunk a growing change cannot get is room
  // that a compaction (which writes the new files before dropping the old)
  // may need later.
  uint64_t target = write_off_ + need + kChunk;
  if (env_->Fallocate(fd_, 0, static_cast<off_t>(allocated_), static_cast<off_t>(target - allocated_)) != 0) {
    return Status::FromErrno("fallocate journal");
  }
  allocated_ = target;
  return Status::Ok();
}

Status Journal::Append(std::string_view record, bool frees_space) {
  if (fd_ < 0) return Status::Err(EROFS, "metadata journal not open for writing");
  // The record and an empty frame header after it, in one write: the file
  // never ends right after a record (see the header comment).
  std::string framed = FrameRecord(record);
  size_t len = framed.size();
  framed.append(kHeader, '\0');
  Status st = Preallocate(framed.size() + reserve_);
  if (!st.ok()) {
    // Out of space ahead of us: only records that free space may dip into the reserve.
    if (!frees_space) return Status::Err(ENOSPC, "metadata journal full");
  }
  st = WriteFully(env_, fd_, framed, static_cast<off_t>(write_off_));
  if (!st.ok()) {
    // Part of the record may be there: turn it back into the end of the records.
    Status zst = WriteFully(env_, fd_, std::string(kHeader, '\0'), static_cast<off_t>(write_off_));
    if (!zst.ok()) TLOG_ERROR("journal: cannot undo a failed append: %s", zst.ToString().c_str());
    return st;
  }
  write_off_ += len;
  allocated_ = std::max(allocated_, write_off_ + kHeader);
  return Status::Ok();
}

Status Journal::Sync() {
  if (fd_ < 0) return Status::Ok();
  if (env_->Fdatasync(fd_) != 0) return Status::FromErrno("fdatasync journal");
  return Status::Ok();
}

Status Journal::WriteSnapshot(const std::string& path, const DumpFn& dump) {
  int fd = env_->Open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("open " + path);
  Status st;
  std::string buf = HeaderFrame(FileHeader{kSnapshotFile, store_id_, generation_ + 1});
  off_t off = 0;
  uint64_t count = 0;
  auto flush = [&] {
    if (st.ok() && !buf.empty()) st = WriteFully(env_, fd, buf, off);
    off += buf.size();
    buf.clear();
  };
  dump([&](std::string_view rec) {
    buf += FrameRecord(rec);
    count++;
    if (buf.size() > (1u << 20)) flush();
  });
  buf += TrailerFrame(generation_ + 1, count);
  flush();
  if (st.ok() && env_->Fsync(fd) != 0) st = Status::FromErrno("fsync " + path);
  env_->Close(fd);
  return st;
}

Status Journal::WriteEmptyJournal(bool reserve, int* fd_out) {
  // Called before generation_ moves on: the new journal continues the next
  // snapshot, or (when Open replaces a journal) the current one.
  std::string path = dir_ + "/journal.tmp";
  int fd = env_->Open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("open " + path);
  std::string head = HeaderFrame(FileHeader{kJournalFile, store_id_, generation_});
  head.append(kHeader, '\0');
  Status st;
  // The old journal holds the reserve until it is replaced: a compaction
  // gives it up only for a journal that has one again.
  if (env_->Fallocate(fd, 0, 0, static_cast<off_t>(head.size() + reserve_)) != 0 && reserve) {
    st = Status::FromErrno("fallocate " + path);
  }
  if (st.ok()) st = WriteFully(env_, fd, head, 0);
  if (st.ok() && env_->Fdatasync(fd) != 0) st = Status::FromErrno("fdatasync " + path);
  if (!st.ok()) {
    env_->Close(fd);
    env_->Unlink(path);
    return st;
  }
  *fd_out = fd;
  return Status::Ok();
}

Status Journal::Install(int fd) {
  if (env_->Rename(dir_ + "/journal.tmp", dir_ + "/journal") != 0) {
    Status st = Status::FromErrno("rename journal");
    env_->Close(fd);
    env_->Unlink(dir_ + "/journal.tmp");
    return st;
  }
  SyncDir(env_, dir_);
  if (fd_ >= 0) env_->Close(fd_);
  fd_ = fd;
  write_off_ = HeaderFrame(FileHeader{}).size();
  struct stat st;
  allocated_ = fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : write_off_ + kHeader;
  Status pst = Preallocate(reserve_);
  if (!pst.ok()) TLOG_WARN("journal: cannot preallocate: %s", pst.ToString().c_str());
  return Status::Ok();
}

Status Journal::Compact(const DumpFn& dump) {
  std::string tmp = dir_ + "/snapshot.tmp";
  // A failure before the snapshot's rename changes nothing. The next try
  // waits until about a snapshot's worth of records was logged: soon on a
  // store that rm -rf is emptying (the namespace shrinks), rarely when a
  // large namespace keeps failing (a full store would fail every time).
  auto failed = [&](Status st) {
    struct stat sb;
    uint64_t wrote = stat(tmp.c_str(), &sb) == 0 ? static_cast<uint64_t>(sb.st_size) : kChunk;
    env_->Unlink(tmp);
    env_->Unlink(dir_ + "/journal.tmp");
    compact_at_ = write_off_ + std::clamp(wrote, kReserve / 4, kChunk);
    room_retry_at_ = compact_at_;
    return st;
  };
  Status st = WriteSnapshot(tmp, dump);
  if (!st.ok()) return failed(st);
  generation_++;
  int fd = -1;
  st = WriteEmptyJournal(true, &fd);
  if (!st.ok()) {
    generation_--;
    return failed(st);
  }
  if (env_->Rename(tmp, dir_ + "/snapshot") != 0) {
    st = Status::FromErrno("rename snapshot");
    generation_--;
    env_->Close(fd);
    return failed(st);
  }
  compact_at_ = kCompactAt;
  room_retry_at_ = 0;
  // Snapshot generation_ is in place: the old journal no longer counts, so
  // appends go nowhere until the new one is.
  if (fd_ >= 0) env_->Close(fd_);
  fd_ = -1;
  st = Install(fd);
  if (!st.ok()) TLOG_ERROR("journal: %s; metadata changes fail until a restart", st.ToString().c_str());
  return st;
}

}  // namespace tempfs
