// MetaEngine: the namespace of a tempfs (names, attributes, links, xattrs).
//
// File data is not here: it lives in the LocalStore (and, in cluster mode, on
// the node that owns it). Engines are chosen by URI (see OpenMetaEngine). Every
// method returns an errno-carrying Status/Result with the errno a local
// filesystem would give. Names reaching an engine are already validated by the
// caller (non-empty, no '/', not "." or "..", at most kNameMax bytes).
//
// Inodes whose link count drops to zero are kept (nlink == 0) until the caller
// calls Drop(): the kernel may still hold them open. Orphans() lists such
// inodes after a restart so that the caller can drop them.
//
// A shared engine checks that it still serves the namespace the store joined
// (namespace_identity.h); when not, it is fenced: every operation fails with
// EIO and Namespace() says why, so that nothing is removed on its word.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "meta/types.h"

namespace tempfs {

struct NamespaceState {
  bool intact = true;
  std::string id;       // the namespace id ("" for an engine kept in the store)
  std::string problem;  // why it is not intact
  std::string left;     // the id of the namespace the store left at open (--join-new-namespace), else ""
};

class MetaEngine {
 public:
  virtual ~MetaEngine() = default;

  // "." and ".." are the kernel's lookups for file handles: the inode
  // `parent` itself (any type, ENOENT once it has no name), and the directory
  // that names directory `parent`.
  virtual Result<Attr> Lookup(Ino parent, std::string_view name) = 0;
  virtual Result<Attr> GetAttr(Ino ino) = 0;
  // Adds a new inode named `name` in `parent`; EEXIST if the name is taken.
  // Directories get nlink 2 and bump the parent's link count.
  virtual Result<Attr> Create(Ino parent, std::string_view name, const NewNode& node) = 0;
  // A new name for an existing non-directory inode.
  virtual Result<Attr> Link(Ino ino, Ino new_parent, std::string_view new_name) = 0;
  // Removes a non-directory name; returns the inode's attributes afterwards.
  virtual Result<Attr> Unlink(Ino parent, std::string_view name) = 0;
  // Removes an empty directory; returns its attributes (nlink 0).
  virtual Result<Attr> Rmdir(Ino parent, std::string_view name) = 0;
  // rename(2)/renameat2(2). Returns the attributes of an inode that lost its
  // last name because it was replaced, if any.
  virtual Result<std::optional<Attr>> Rename(Ino parent, std::string_view name, Ino new_parent,
                                             std::string_view new_name, unsigned flags) = 0;
  virtual Result<Attr> SetAttr(Ino ino, const SetAttrRequest& req) = 0;
  virtual Result<std::string> ReadLink(Ino ino) = 0;
  // The whole directory, in a stable order, without "." and "..".
  virtual Result<std::vector<DirEntry>> ReadDir(Ino dir) = 0;

  virtual Result<std::string> GetXattr(Ino ino, std::string_view name) = 0;
  virtual Result<std::vector<std::string>> ListXattr(Ino ino) = 0;
  // flags: XATTR_CREATE / XATTR_REPLACE.
  virtual Status SetXattr(Ino ino, std::string_view name, std::string_view value, int flags) = 0;
  virtual Status RemoveXattr(Ino ino, std::string_view name) = 0;

  // Forgets an inode that has no names left (nlink == 0).
  virtual Status Drop(Ino ino) = 0;
  virtual Result<std::vector<Ino>> Orphans() = 0;
  // Number of inodes, for statfs.
  virtual uint64_t InodeCount() = 0;
  // Buckets of the engine's in-memory inode index (0: it keeps none), for
  // the admin view: it must shrink again when inodes go.
  virtual uint64_t IndexBuckets() { return 0; }
  // Makes everything so far durable against power loss (not only a crash).
  virtual Status Sync() = 0;
  // Cheap (no round trip): what the engine last saw of its namespace.
  virtual NamespaceState Namespace() { return {}; }
  // The highest inode number the engine has handed out. A data file of a
  // higher number belongs to a future this namespace never saw (it was
  // restored from an older copy): never delete it on the engine's word.
  virtual Result<Ino> LastIno() = 0;
};

struct MetaOpenOptions {
  // Shared engines: a store that belongs to another namespace (or to one the
  // engine lost) joins the engine's namespace, or makes a new one in an
  // empty engine, instead of being refused.
  bool join_new_namespace = false;
};

// Opens the engine named by `uri` for the store at `store_dir`. "" or
// "embedded" selects the embedded engine, kept under store_dir/meta; damaged
// metadata is EUCLEAN with a one-line message that says what to do.
Result<std::unique_ptr<MetaEngine>> OpenMetaEngine(const std::string& uri, const std::string& store_dir,
                                                   const MetaOpenOptions& options = {});

// Inode numbers of the data files in the store at `store_dir`.
Result<std::vector<Ino>> DataFilesOf(const std::string& store_dir);
// The message of refused damage `st` of the store at `store_dir`, with what to do.
std::string DamageMessage(const Status& st, const std::string& store_dir);

}  // namespace tempfs
