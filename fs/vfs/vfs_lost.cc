// Lost data: a file whose record says it holds data but whose data file is
// gone from the store (deleted by hand, a tmpfs store wiped by a reboot,
// disk damage). Such a file fails to open with EIO, every time: no empty
// data file is made in its place, which would later pass for a valid empty
// file. Its name still stats, renames and unlinks, so the user can delete it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "vfs/vfs.h"

namespace tempfs {

bool Vfs::RecordSaysData(const Attr& a) const {
  // Sizes reach the record on truncate and when a written handle goes (one
  // node: Release, RecordSize, when the file turned empty or non-empty;
  // cluster mode: close, CommitContent).
  return S_ISREG(a.mode) && a.size > 0;
}

Status Vfs::LostData(const Attr& a) {
  std::string path = store_->root() + "/data/" + LocalStore::DataName(a.ino);
  bool first;
  {
    std::lock_guard lock(mu_);
    first = lost_reported_.insert(a.ino).second;
  }
  // One line per inode and run: a reader that retries must not flood the log.
  if (first) {
    TLOG_ERROR("inode %llu: data file %s is missing but the record says %llu bytes: the data is lost "
               "(removed from the store, or the store was wiped); opens fail with EIO, delete the file to clear it",
               static_cast<unsigned long long>(a.ino), path.c_str(), static_cast<unsigned long long>(a.size));
  }
  return Status::Err(EIO, "data of inode " + std::to_string(a.ino) + " is lost: " + path + " is missing");
}

Result<int> Vfs::OpenLocalData(Ino ino, int flags, const Attr* known) {
  auto fd = store_->OpenData(ino, flags & ~O_CREAT);
  if (fd.ok() || fd.err() != ENOENT) return fd;
  Attr a;
  if (known != nullptr) {
    a = *known;
  } else {
    auto r = meta_->GetAttr(ino);
    if (!r.ok()) return r.status();
    a = *r;
  }
  // Emptying the file drops whatever it held: nothing more is lost by it.
  if (RecordSaysData(a) && !(flags & O_TRUNC)) return LostData(a);
  // Never written (the record may have been made just before a crash that
  // came before the data file): an empty file, as the record says.
  return store_->OpenData(ino, flags | O_CREAT);
}

void Vfs::RecordSize(Ino ino, uint64_t size) {
  auto a = meta_->GetAttr(ino);
  // Only when the file goes from empty to holding data or back: that is all
  // that tells a lost file from an empty one, and a file reopened and
  // appended to over and over costs no record each time (nor, on a full
  // store, room of the journal's reserve, which such records may use).
  if (!a.ok() || (a->size == 0) == (size == 0)) return;
  SetAttrRequest req;
  // The record's ctime stays: the data file's own, later one shows (MergeData);
  // a "now" from here would put ctime after mtime.
  req.valid = SetAttrRequest::kSize | SetAttrRequest::kCtime;
  req.size = size;
  req.ctime_ns = a->ctime_ns;
  // The data itself is stored already: a failure here does not fail the close.
  auto r = meta_->SetAttr(ino, req);
  if (!r.ok()) {
    TLOG_WARN("inode %llu: cannot record its size: %s", static_cast<unsigned long long>(ino),
              r.status().ToString().c_str());
  }
}

}  // namespace tempfs
