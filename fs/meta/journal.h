// Journal: the durable log behind the embedded metadata engine.
//
// Two files in one directory: `snapshot` (the whole namespace at some point)
// and `journal` (every change since), both made of records framed with their
// length, a magic number that says what kind of record it is, and an xxHash64
// checksum. A record is appended with one pwrite() before its change is
// applied in memory, so a SIGKILLed daemon loses nothing it acknowledged;
// Sync() adds fdatasync for power loss.
//
// The format lets damage be told from a crash:
//   snapshot = header(snapshot, store id, generation G) record* trailer(G, count)
//   journal  = header(journal, store id, G) record* then zeros
// A snapshot is written whole under another name and renamed into place, so
// anything short of exactly that is damage. A compaction writes snapshot G+1
// and journal G+1 and renames them in that order; a journal of generation G
// beside snapshot G+1 is the crash between the two renames, and its records
// are all in the snapshot already.
//
// The end of the journal: a crash can leave only the last record torn
// (records are written one at a time, each after the previous completed).
// So the valid records are followed either by nothing but the torn remains of
// one record or by zeros, and:
//   - an invalid frame followed, anywhere later in the file, by a valid frame
//     is damage (records in the middle are unreadable);
//   - a file that ends exactly after a record is truncated, since each append
//     writes its record followed by an empty frame header (kHeader zero
//     bytes) in the same pwrite and the file never shrinks below that: this
//     holds whether or not preallocation succeeded (a full store writes the
//     zeros into the space the record claims, and a failed append writes the
//     zeros back over its own start);
//   - anything else after the valid records is a torn tail, dropped (zeroed).
// A torn record whose own payload holds bytes that form a valid frame (a
// crafted xattr value, say) is reported as damage: a false alarm that fsck
// resolves, never a silent loss.
//
// Power loss is another matter: without Sync() the kernel may have written
// a later page of the journal and not an earlier one, which reads as damage
// (refused, and fsck recovers every record that reached the disk).
//
// A missing file: snapshot and journal both missing is a new store unless the
// caller says the store already holds data; one without the other is damage.
// A store written before headers existed is refused too; fsck converts it.
//
// Damage is EUCLEAN with a message that names the file and what is wrong.
//
// The journal keeps space allocated ahead of the write offset: when the store
// fills up, operations that free space (unlink, rmdir, ...) can still be
// logged, so a full store can always be emptied again. The engine sizes that
// reserve (SetReserve) to what removing every name would log, at least 1 MiB:
// a store filled by names alone, with no data to delete first, empties too. That reserve is part
// of the file, so it survives restarts and crashes; compaction replaces the
// journal only by one that has its reserve allocated (else it fails and
// changes nothing), and opening a journal writes nothing unless a torn record
// must be cleared (and then cuts the file if it cannot).
//
// Not thread-safe: the engine serialises calls.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "store/env.h"

namespace tempfs {

struct JournalOptions {
  enum class Mode {
    kServe,    // damage is refused; the journal is open for appends
    kCheck,    // damage is refused; nothing is written (fsck's first look)
    kRecover,  // every readable record is replayed, damage or not (fsck)
  };
  Mode mode = Mode::kServe;
  // The store holds data files: missing metadata is damage, not a new store.
  bool store_has_data = false;
};

// What a recovery read (kRecover) found.
struct ReplayReport {
  uint64_t snapshot_records = 0, journal_records = 0;
  std::vector<std::string> damage;  // one line per damaged region or file
  std::string kept_in;              // where the damaged files were kept
  bool intact() const { return damage.empty(); }
};

class Journal {
 public:
  using RecordFn = std::function<void(std::string_view record)>;
  // Calls `emit` for every record of a new snapshot.
  using DumpFn = std::function<void(const RecordFn& emit)>;

  // Opens dir/snapshot and dir/journal and replays their records through
  // `apply`, snapshot first. Files are reached through `env`, which must
  // outlive the journal. In kRecover mode `report` (required) says what was
  // read and lost; the damaged files are kept (hard links) in
  // dir/damaged-TIMESTAMP/ and nothing can be appended until Compact().
  static Result<std::unique_ptr<Journal>> Open(const std::string& dir, const RecordFn& apply,
                                               Env* env = Env::Default(), const JournalOptions& options = {},
                                               ReplayReport* report = nullptr);
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
  // Writes snapshot and journal of the next generation from `dump`. A failure
  // changes nothing; NeedsCompaction() then waits for more records (about as
  // many as the failed snapshot held, 256 KiB to kChunk), so that a full store
  // does not rewrite its whole namespace at every change.
  Status Compact(const DumpFn& dump);
  uint64_t generation() const { return generation_; }

  static constexpr uint64_t kCompactAt = 64ull << 20;
  static constexpr uint64_t kChunk = 4ull << 20;
  static constexpr uint64_t kReserve = 1ull << 20;
  // The room kept allocated past the records for changes that free space
  // (at least kReserve). The engine sizes it to what deleting every name
  // would log, so a store that filled up can always be emptied, however the
  // rest of it was filled (data written later cannot take this room).
  void SetReserve(uint64_t bytes) { reserve_ = std::max(kReserve, bytes); }
  uint64_t reserve() const { return reserve_; }

 private:
  Journal(std::string dir, Env* env) : dir_(std::move(dir)), env_(env) {}
  Status Preallocate(uint64_t need);
  // Writes dir/journal.tmp holding only the header of `generation_`, with the
  // reserve allocated when `reserve` (else as much as there is); *fd gets it.
  Status WriteEmptyJournal(bool reserve, int* fd);
  Status WriteSnapshot(const std::string& path, const DumpFn& dump);
  Status Install(int fd);  // renames journal.tmp into place and appends to `fd`
  // Makes `tail`, the bytes past the valid records, harmless for later appends.
  Status ClearTail(std::string_view tail);

  std::string dir_;
  Env* env_;
  int fd_ = -1;  // -1: no appends (checking, recovering, or a failed compaction)
  uint64_t store_id_ = 0;
  uint64_t generation_ = 0;
  uint64_t write_off_ = 0;
  uint64_t allocated_ = 0;
  uint64_t compact_at_ = kCompactAt;
  uint64_t room_retry_at_ = 0;
  uint64_t reserve_ = kReserve;
};

// Frames `record` (header + payload), as written to the files. Exposed for tests.
std::string FrameRecord(std::string_view record);
// Calls `fn` for each engine record of the valid prefix of `data` (file
// headers and trailers are passed over); returns the prefix's byte length.
size_t ForEachRecord(std::string_view data, const Journal::RecordFn& fn);
// Where each engine record of the valid prefix begins and ends (for tests
// that damage files at record boundaries).
struct RecordSpan {
  size_t begin = 0, end = 0;
};
std::vector<RecordSpan> RecordSpans(std::string_view data);

}  // namespace tempfs
