// Journal: the durable log behind the embedded metadata engine.
//
// A snapshot file plus an append-only journal of records, each framed with
// its length and an xxHash64 checksum, so that a torn tail is detected and
// ignored on replay. A record is appended with one pwrite() before its change
// is applied in memory, so a SIGKILLed daemon loses nothing it acknowledged;
// Sync() adds fdatasync for power loss.
//
// The journal keeps space allocated ahead of the write offset: when the store
// fills up, operations that free space (unlink, rmdir, ...) can still be
// logged, so a full store can always be emptied again. That reserve is part
// of the file, so it survives restarts and crashes; compaction empties the
// journal without giving it back, and opening a journal writes nothing unless
// a torn record must be cleared (and then cuts the file if it cannot).
//
// Not thread-safe: the engine serialises calls.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "store/env.h"

namespace tempfs {

class Journal {
 public:
  using RecordFn = std::function<void(std::string_view record)>;
  // Calls `emit` for every record of a new snapshot.
  using DumpFn = std::function<void(const RecordFn& emit)>;

  // Opens dir/snapshot and dir/journal (creating them), and replays every
  // valid record through `apply`, snapshot first. Files are reached through
  // `env`, which must outlive the journal.
  static Result<std::unique_ptr<Journal>> Open(const std::string& dir, const RecordFn& apply,
                                               Env* env = Env::Default());
  ~Journal();

  // Appends one record. Records that free space may use the reserve.
  Status Append(std::string_view record, bool frees_space);
  Status Sync();
  bool NeedsCompaction() const { return write_off_ > compact_at_; }
  // Whether a compaction might give room to a change that just found none:
  // the journal holds more than its reserve (a store emptied by rm -rf may be
  // mostly journal), and records were logged since the last attempt failed
  // (on a store that stays full, failed changes do not redo the whole dump).
  bool CompactionMayMakeRoom() const {
    return allocated_ > 2 * kReserve && write_off_ >= room_retry_at_;
  }
  // Writes a new snapshot from `dump`, then empties the journal. A failure
  // changes nothing; NeedsCompaction() then waits for more records (as many
  // as the failed attempt wrote, 256 KiB to kChunk), so that a full store
  // does not rewrite its whole namespace at every change.
  Status Compact(const DumpFn& dump);

  static constexpr uint64_t kCompactAt = 64ull << 20;
  static constexpr uint64_t kChunk = 4ull << 20;
  static constexpr uint64_t kReserve = 1ull << 20;

 private:
  Journal(std::string dir, int fd, Env* env) : dir_(std::move(dir)), fd_(fd), env_(env) {}
  Status Preallocate(uint64_t need);
  // Makes `tail`, the bytes past the valid records, harmless for later appends.
  Status ClearTail(std::string_view tail);
  // Empties the journal after a compaction but keeps its reserve allocated.
  Status Restart();

  std::string dir_;
  int fd_ = -1;
  Env* env_;
  uint64_t write_off_ = 0;
  uint64_t allocated_ = 0;
  uint64_t compact_at_ = kCompactAt;
  uint64_t room_retry_at_ = 0;
};

// Frames `record` (header + payload), as written to the files. Exposed for tests.
std::string FrameRecord(std::string_view record);
// Calls `fn` for each valid framed record in `data`; returns the byte length
// of the valid prefix.
size_t ForEachRecord(std::string_view data, const Journal::RecordFn& fn);

}  // namespace tempfs
