// MetaTxn: the small set of primitives a metadata engine implements.
//
// The namespace's rules (what rename may do, link counts, times, errnos)
// are written once, in TxnMeta, over these primitives; engines only store
// records. Reads see one consistent state for the transaction; writes are
// buffered and applied all together when the transaction commits, or not at
// all. Records:
//   inode  ino -> InodeRecord (attributes, parent of a directory, link text)
//   entry  (parent, name) -> (ino, file type)
//   xattr  (ino, name) -> value
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "meta/types.h"

namespace tempfs {

struct InodeRecord {
  Attr attr;
  Ino parent = 0;      // directories: the directory that names them
  std::string target;  // symlinks: the link text
};

std::string EncodeInodeRecord(const InodeRecord& rec);
bool DecodeInodeRecord(std::string_view data, InodeRecord* rec);

class MetaTxn {
 public:
  virtual ~MetaTxn() = default;

  virtual Result<std::optional<InodeRecord>> GetInode(Ino ino) = 0;
  virtual Result<std::optional<Ino>> GetEntry(Ino parent, std::string_view name) = 0;
  virtual Result<std::vector<DirEntry>> ListEntries(Ino dir) = 0;
  virtual Result<bool> HasEntries(Ino dir) = 0;
  virtual Result<std::optional<std::string>> GetXattr(Ino ino, std::string_view name) = 0;
  virtual Result<std::vector<std::string>> ListXattrs(Ino ino) = 0;
  // A fresh inode number, never handed out before.
  virtual Result<Ino> NewIno() = 0;

  virtual void PutInode(const InodeRecord& rec) = 0;
  // Removes the inode with its entries (if a directory) and xattrs.
  virtual void DelInode(Ino ino) = 0;
  virtual void PutEntry(Ino parent, std::string_view name, Ino ino, uint32_t mode) = 0;
  virtual void DelEntry(Ino parent, std::string_view name) = 0;
  virtual void PutXattr(Ino ino, std::string_view name, std::string_view value) = 0;
  virtual void DelXattr(Ino ino, std::string_view name) = 0;
};

}  // namespace tempfs
