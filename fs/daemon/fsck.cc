#include "daemon/fsck.h"

#include <sys/stat.h>

#include <vector>

#include "meta/embedded_meta.h"
#include "store/local_store.h"

namespace tempfs {
namespace {

int Fail(const std::string& msg) {
  fprintf(stderr, "tempfs fsck: %s\n", msg.c_str());
  return 1;
}

// What the data folder holds that the namespace does not explain.
struct DataCheck {
  std::vector<Ino> unowned;       // no inode: named in lost+found
  std::vector<Ino> not_regular;   // the inode is not a regular file: left alone
};

DataCheck CheckData(EmbeddedMeta& m, const std::vector<Ino>& data) {
  DataCheck c;
  for (Ino ino : data) {
    auto a = m.GetAttr(ino);
    if (!a.ok()) c.unowned.push_back(ino);
    else if (!m.IsRegularFile(ino)) c.not_regular.push_back(ino);
  }
  return c;
}

std::string Inos(const std::vector<Ino>& v) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < 10; i++) s += (i ? ", " : "") + std::to_string(v[i]);
  if (v.size() > 10) s += ", ...";
  return s;
}

void PrintRepair(FILE* out, const TreeRepair& r) {
  if (r.root_made) fprintf(out, "  the root directory was lost: made a new one\n");
  if (r.dirs_rebuilt) {
    fprintf(out, "  %llu directories whose record was lost rebuilt (mode 0700, owner root)\n",
            (unsigned long long)r.dirs_rebuilt);
  }
  if (r.names_removed) fprintf(out, "  %llu names of lost inodes removed\n", (unsigned long long)r.names_removed);
  if (r.names_fixed) fprintf(out, "  %llu names with a wrong file type fixed\n", (unsigned long long)r.names_fixed);
  if (r.linked) {
    fprintf(out, "  %llu inodes that no name reached moved to /lost+found\n", (unsigned long long)r.linked);
  }
  if (r.nlinks_fixed) fprintf(out, "  %llu link counts fixed\n", (unsigned long long)r.nlinks_fixed);
}

// The first look, which writes nothing: "" when the store is intact (then
// `verdict` says so), else what is wrong.
Result<std::string> WhatIsWrong(const std::string& store, EmbeddedOptions options, const std::vector<Ino>& data,
                                std::string* verdict) {
  options.mode = JournalOptions::Mode::kCheck;
  auto m = EmbeddedMeta::Open(store + "/meta", Env::Default(), options);
  if (!m.ok() && m.err() != EUCLEAN) return Status::Err(m.err(), "metadata: " + m.status().ToString());
  if (!m.ok()) return "metadata damaged: " + m.status().message();
  if ((*m)->InodeCount() == 0 && data.empty()) {
    *verdict = "holds no metadata and no data yet (a new store)";
    return std::string();
  }
  TreeRepair r = (*m)->RepairTree();  // in memory only: a check-mode engine writes nothing
  DataCheck dc = CheckData(**m, data);
  if (r.changed()) return std::string("the namespace needs repair");
  if (!dc.unowned.empty()) return std::to_string(dc.unowned.size()) + " data files no inode owns";
  *verdict = "is intact (" + std::to_string((*m)->InodeCount()) + " inodes, " + std::to_string(data.size()) +
             " data files)";
  return std::string();
}

void PrintLosses(FILE* out, const ReplayReport& replay, const std::vector<Ino>& failed, const DataCheck& dc) {
  if (replay.damage.empty() && failed.empty() && dc.not_regular.empty()) return;
  fprintf(out, "could not be saved:\n");
  for (auto& d : replay.damage) {
    fprintf(out, "  %s: the names and attributes recorded there are lost", d.c_str());
    fprintf(out, " (data files of lost inodes are in /lost+found)\n");
  }
  if (!failed.empty()) fprintf(out, "  data files that could not be named: inodes %s\n", Inos(failed).c_str());
  if (!dc.not_regular.empty()) {
    fprintf(out, "  data files of inodes that are not regular files, left in data/: inodes %s\n",
            Inos(dc.not_regular).c_str());
  }
}

int Recover(const std::string& store, EmbeddedOptions options, const std::vector<Ino>& data, FILE* out) {
  options.mode = JournalOptions::Mode::kRecover;
  ReplayReport replay;
  auto m = EmbeddedMeta::Open(store + "/meta", Env::Default(), options, &replay);
  if (!m.ok()) return Fail("recovery: " + m.status().ToString());
  fprintf(out, "read: %llu records of meta/snapshot, %llu of meta/journal\n",
          (unsigned long long)replay.snapshot_records, (unsigned long long)replay.journal_records);
  TreeRepair r = (*m)->RepairTree();
  DataCheck dc = CheckData(**m, data);
  auto local = LocalStore::Open(store);
  if (!local.ok()) return Fail(local.status().ToString());
  std::vector<Ino> adopted, failed;
  for (Ino ino : dc.unowned) {
    auto s = (*local)->StatData(ino);
    Status ast = s.ok() ? (*m)->AdoptData(ino, s->st_size) : s.status();
    (ast.ok() ? adopted : failed).push_back(ino);
  }
  Status cst = (*m)->Commit();
  if (!cst.ok()) {
    return Fail("writing the recovered metadata: " + cst.ToString() + " (nothing lost yet: run fsck again)");
  }
  fprintf(out, "repaired:\n");
  PrintRepair(out, r);
  if (!adopted.empty()) {
    fprintf(out, "  %zu data files that no inode owned moved to /lost+found as #INO (inodes %s)\n", adopted.size(),
            Inos(adopted).c_str());
  }
  if (!r.changed() && adopted.empty()) fprintf(out, "  nothing in the tree needed repair\n");
  PrintLosses(out, replay, failed, dc);
  fprintf(out, "the damaged files are kept in %s\n", replay.kept_in.c_str());
  fprintf(out, "done: %s can be mounted again (%llu inodes)\n", store.c_str(),
          (unsigned long long)(*m)->InodeCount());
  return 0;
}

}  // namespace

int RunFsck(const std::string& store, FILE* out) {
  struct stat st;
  if (stat(store.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return Fail("store " + store + ": not a directory");
  // A served store changes under us: refuse (the lock is held to the end).
  auto lock = StoreLock::Acquire(store);
  if (!lock.ok()) {
    if (lock.err() == EBUSY) return Fail(lock.status().message() + "; unmount it first");
    return Fail(lock.status().ToString());
  }
  auto data = DataFilesOf(store);
  if (!data.ok()) return Fail(data.status().ToString());
  EmbeddedOptions options;
  options.store_has_data = !data->empty();
  for (Ino ino : *data) options.min_next_ino = std::max(options.min_next_ino, ino + 1);
  std::string verdict;
  auto wrong = WhatIsWrong(store, options, *data, &verdict);
  if (!wrong.ok()) return Fail(wrong.status().message());
  if (wrong->empty()) {
    fprintf(out, "tempfs fsck: %s %s; nothing changed\n", store.c_str(), verdict.c_str());
    return 0;
  }
  fprintf(out, "tempfs fsck: %s: %s\n", store.c_str(), wrong->c_str());
  return Recover(store, options, *data, out);
}

}  // namespace tempfs
