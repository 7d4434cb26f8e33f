// Durability across a daemon crash: what was written and closed before the
// daemon is SIGKILLed must be there, unchanged, after `tempfs umount` cleans
// up the dead mount and tempfs is mounted again on the same store.

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/mount_fixture.h"

namespace tempfs::testing {
namespace {

constexpr size_t kMiB = 1 << 20;


uint64_t Fnv1a(const std::string& data, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : data) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::string Errno() { return std::strerror(errno); }

// What one name looks like on the mount.
struct Node {
  char type = '?';  // 'f' regular file, 'd' directory, 'l' symlink
  mode_t perm = 0;
  uint64_t size = 0;
  uint64_t hash = 0;   // files only
  std::string target;  // symlinks only
  nlink_t nlink = 0;
  ino_t ino = 0;
  std::map<std::string, std::string> xattrs;  // user.* only
  std::string error;                          // why inspecting it failed, "" if it did not
};
using Tree = std::map<std::string, Node>;  // relative path -> node

Node Inspect(const std::string& path) {
  Node n;
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    n.error = "lstat: " + Errno();
    return n;
  }
  n.type = S_ISREG(st.st_mode) ? 'f' : S_ISDIR(st.st_mode) ? 'd' : S_ISLNK(st.st_mode) ? 'l' : '?';
  n.perm = st.st_mode & 07777;
  n.size = st.st_size;
  n.nlink = st.st_nlink;
  n.ino = st.st_ino;
  if (n.type == 'f') {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      n.error = "open: " + Errno();
      return n;
    }
    uint64_t h = 0xcbf29ce484222325ull;
    uint64_t total = 0;
    std::string buf(kMiB, '\0');
    for (;;) {
      ssize_t r = read(fd, buf.data(), buf.size());
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        n.error = "read: " + Errno();
        break;
      }
      if (r == 0) break;
      h = Fnv1a(buf.substr(0, static_cast<size_t>(r)), h);
      total += static_cast<uint64_t>(r);
    }
    close(fd);
    n.hash = h;
    if (n.error.empty() && total != n.size) {
      n.error = "read " + std::to_string(total) + " bytes but stat says " + std::to_string(n.size);
    }
  } else if (n.type == 'l') {
    char buf[4096];
    ssize_t r = readlink(path.c_str(), buf, sizeof(buf));
    if (r < 0) {
      n.error = "readlink: " + Errno();
    } else {
      n.target.assign(buf, static_cast<size_t>(r));
    }
  }
  if (n.type != 'l') {
    char names[8192];
    ssize_t len = llistxattr(path.c_str(), names, sizeof(names));
    if (len < 0) {
      n.error += "llistxattr: " + Errno();
      return n;
    }
    for (ssize_t off = 0; off < len;) {
      std::string name(names + off);
      off += static_cast<ssize_t>(name.size()) + 1;
      if (name.rfind("user.", 0) != 0) continue;
      char value[8192];
      ssize_t vlen = lgetxattr(path.c_str(), name.c_str(), value, sizeof(value));
      if (vlen < 0) {
        n.error += "lgetxattr " + name + ": " + Errno();
        continue;
      }
      n.xattrs[name] = std::string(value, static_cast<size_t>(vlen));
    }
  }
  return n;
}

// Records every name below root (recursively) into *tree.
void Walk(const std::string& root, const std::string& rel, Tree* tree) {
  const std::string dir_path = rel.empty() ? root : root + "/" + rel;
  DIR* dir = opendir(dir_path.c_str());
  if (dir == nullptr) {
    (*tree)[rel.empty() ? "." : rel].error += "opendir: " + Errno();
    return;
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  if (errno != 0) (*tree)[rel.empty() ? "." : rel].error += "readdir: " + Errno();
  closedir(dir);
  for (const std::string& name : names) {
    const std::string child = rel.empty() ? name : rel + "/" + name;
    if (tree->count(child) != 0) {
      (*tree)[child].error += "listed twice; ";
      continue;
    }
    Node node = Inspect(root + "/" + child);
    (*tree)[child] = node;
    if (node.type == 'd') Walk(root, child, tree);
  }
}

Tree Snapshot(const std::string& root) {
  Tree tree;
  Walk(root, "", &tree);
  return tree;
}

std::string Describe(const std::map<std::string, std::string>& xattrs) {
  std::ostringstream out;
  out << "{";
  for (const auto& [k, v] : xattrs) out << k << "=(" << v.size() << " bytes) ";
  out << "}";
  return out.str();
}

// The model of what the mount must contain: names pointing to inodes, so
// hard links share content, mode and xattrs.
struct Inode {
  char type = 'f';
  mode_t perm = 0;
  std::string content;  // files
  std::string target;   // symlinks
  std::map<std::string, std::string> xattrs;
};

class Model {
 public:
  void Add(const std::string& path, Inode inode) {
    names_[path] = next_id_;
    inodes_[next_id_++] = std::move(inode);
  }
  void Link(const std::string& existing, const std::string& path) {
    names_[path] = names_.at(existing);
  }
  void Remove(const std::string& path) { names_.erase(path); }
  bool Has(const std::string& path) const { return names_.count(path) != 0; }
  Inode& At(const std::string& path) { return inodes_.at(names_.at(path)); }
  // Moves path and everything below it, replacing what `to` named.
  void Rename(const std::string& from, const std::string& to) {
    std::map<std::string, int> moved;
    for (auto it = names_.begin(); it != names_.end();) {
      if (it->first == from || it->first.rfind(from + "/", 0) == 0) {
        moved[to + it->first.substr(from.size())] = it->second;
        it = names_.erase(it);
      } else {
        ++it;
      }
    }
    names_.erase(to);
    for (auto& [path, id] : moved) names_[path] = id;
  }
  int LinkCount(int id) const {
    int count = 0;
    for (const auto& [path, other] : names_) count += other == id;
    return count;
  }
  const std::map<std::string, int>& names() const { return names_; }
  const Inode& inode(int id) const { return inodes_.at(id); }

 private:
  std::map<std::string, int> names_;
  std::map<int, Inode> inodes_;
  int next_id_ = 1;
};

// A file written before the crash and still open when the daemon died.
struct OpenFile {
  std::string rel;
  std::string written;
  int fd = -1;
};

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TEMPFS_SKIP_IF_NO_FUSE();
    dir_ = std::make_unique<TempDir>("crash");
    mount_ = TempfsMount::Start(dir_->path());
    ASSERT_NE(mount_, nullptr);
  }

  void TearDown() override {
    for (int fd : stale_fds_) close(fd);
  }

  std::string Abs(const std::string& rel) const { return mount_->mnt() + "/" + rel; }

  // ---- Operations on the mount that keep the model in step. ----

  void PutFile(const std::string& rel, const std::string& content, mode_t perm, bool do_fsync) {
    const std::string path = Abs(rel);
    int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, perm);
    if (fd < 0) {
      ADD_FAILURE() << "create " << rel << ": " << Errno();
      return;
    }
    bool ok = WriteAll(fd, content, rel);
    if (fchmod(fd, perm) != 0) ADD_FAILURE() << "fchmod " << rel << ": " << Errno();
    if (do_fsync && fsync(fd) != 0) ADD_FAILURE() << "fsync " << rel << ": " << Errno();
    if (close(fd) != 0) ADD_FAILURE() << "close " << rel << ": " << Errno();
    if (!ok) return;
    if (model_.Has(rel)) {
      model_.At(rel).content = content;
      model_.At(rel).perm = perm;
    } else {
      model_.Add(rel, Inode{'f', perm, content, "", {}});
    }
  }

  bool WriteAll(int fd, const std::string& data, const std::string& rel) {
    for (size_t done = 0; done < data.size();) {
      ssize_t n = write(fd, data.data() + done, std::min(data.size() - done, kMiB));
      if (n <= 0) {
        ADD_FAILURE() << "write " << rel << " at " << done << ": " << Errno();
        return false;
      }
      done += static_cast<size_t>(n);
    }
    return true;
  }

  void Append(const std::string& rel, const std::string& data) {
    int fd = open(Abs(rel).c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
      ADD_FAILURE() << "open O_APPEND " << rel << ": " << Errno();
      return;
    }
    bool ok = WriteAll(fd, data, rel);
    if (close(fd) != 0) ADD_FAILURE() << "close " << rel << ": " << Errno();
    if (ok) model_.At(rel).content += data;
  }

  void Overwrite(const std::string& rel, off_t offset, const std::string& data) {
    int fd = open(Abs(rel).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      ADD_FAILURE() << "open " << rel << ": " << Errno();
      return;
    }
    ssize_t n = pwrite(fd, data.data(), data.size(), offset);
    if (n != static_cast<ssize_t>(data.size())) {
      ADD_FAILURE() << "pwrite " << rel << ": " << Errno();
    }
    if (fsync(fd) != 0) ADD_FAILURE() << "fsync " << rel << ": " << Errno();
    if (close(fd) != 0) ADD_FAILURE() << "close " << rel << ": " << Errno();
    if (n == static_cast<ssize_t>(data.size())) {
      model_.At(rel).content.replace(offset, data.size(), data);
    }
  }

  void Truncate(const std::string& rel, off_t size) {
    if (truncate(Abs(rel).c_str(), size) != 0) {
      ADD_FAILURE() << "truncate " << rel << ": " << Errno();
      return;
    }
    model_.At(rel).content.resize(size);
  }

  void Mkdir(const std::string& rel, mode_t perm) {
    if (mkdir(Abs(rel).c_str(), perm) != 0 || chmod(Abs(rel).c_str(), perm) != 0) {
      ADD_FAILURE() << "mkdir " << rel << ": " << Errno();
      return;
    }
    model_.Add(rel, Inode{'d', perm, "", "", {}});
  }

  void Symlink(const std::string& target, const std::string& rel) {
    if (symlink(target.c_str(), Abs(rel).c_str()) != 0) {
      ADD_FAILURE() << "symlink " << rel << ": " << Errno();
      return;
    }
    model_.Add(rel, Inode{'l', 0777, "", target, {}});
  }

  void Link(const std::string& existing, const std::string& rel) {
    if (link(Abs(existing).c_str(), Abs(rel).c_str()) != 0) {
      ADD_FAILURE() << "link " << existing << " -> " << rel << ": " << Errno();
      return;
    }
    model_.Link(existing, rel);
  }

  void Rename(const std::string& from, const std::string& to) {
    if (rename(Abs(from).c_str(), Abs(to).c_str()) != 0) {
      ADD_FAILURE() << "rename " << from << " -> " << to << ": " << Errno();
      return;
    }
    model_.Rename(from, to);
  }

  void Unlink(const std::string& rel) {
    if (unlink(Abs(rel).c_str()) != 0) {
      ADD_FAILURE() << "unlink " << rel << ": " << Errno();
      return;
    }
    model_.Remove(rel);
  }

  void Rmdir(const std::string& rel) {
    if (rmdir(Abs(rel).c_str()) != 0) {
      ADD_FAILURE() << "rmdir " << rel << ": " << Errno();
      return;
    }
    model_.Remove(rel);
  }

  void Chmod(const std::string& rel, mode_t perm) {
    if (chmod(Abs(rel).c_str(), perm) != 0) {
      ADD_FAILURE() << "chmod " << rel << ": " << Errno();
      return;
    }
    model_.At(rel).perm = perm;
  }

  void SetXattr(const std::string& rel, const std::string& name, const std::string& value) {
    if (setxattr(Abs(rel).c_str(), name.c_str(), value.data(), value.size(), 0) != 0) {
      ADD_FAILURE() << "setxattr " << rel << " " << name << ": " << Errno();
      return;
    }
    model_.At(rel).xattrs[name] = value;
  }

  void RemoveXattr(const std::string& rel, const std::string& name) {
    if (removexattr(Abs(rel).c_str(), name.c_str()) != 0) {
      ADD_FAILURE() << "removexattr " << rel << " " << name << ": " << Errno();
      return;
    }
    model_.At(rel).xattrs.erase(name);
  }

  // Writes data to a new file and leaves it open over the crash.
  OpenFile KeepOpen(const std::string& rel, const std::string& data) {
    OpenFile f{rel, data, open(Abs(rel).c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644)};
    if (f.fd < 0) {
      ADD_FAILURE() << "create " << rel << ": " << Errno();
      return f;
    }
    stale_fds_.push_back(f.fd);
    WriteAll(f.fd, data, rel);
    return f;
  }

  // A file that is unlinked while open: it must not come back after a crash.
  void KeepUnlinkedOpen(const std::string& rel) {
    int fd = open(Abs(rel).c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd < 0) {
      ADD_FAILURE() << "create " << rel << ": " << Errno();
      return;
    }
    stale_fds_.push_back(fd);
    WriteAll(fd, Pattern(99, 32 * 1024), rel);
    if (fsync(fd) != 0) ADD_FAILURE() << "fsync " << rel << ": " << Errno();
    if (unlink(Abs(rel).c_str()) != 0) ADD_FAILURE() << "unlink " << rel << ": " << Errno();
    // Still usable while the daemon lives.
    char c;
    if (pread(fd, &c, 1, 0) != 1) ADD_FAILURE() << "read unlinked " << rel << ": " << Errno();
  }

  // ---- Checks ----

  // Compares the mount with the model. `lenient` names are checked elsewhere.
  // `before` (a snapshot taken before the crash) supplies directory link
  // counts, which the model does not predict.
  void ExpectMatchesModel(const Tree& got, const std::set<std::string>& lenient, const Tree* before,
                          const std::string& when) {
    std::vector<std::string> problems;
    std::map<int, ino_t> ino_of_inode;
    for (const auto& [path, id] : model_.names()) {
      if (lenient.count(path) != 0) continue;
      auto it = got.find(path);
      if (it == got.end()) {
        problems.push_back(path + ": missing");
        continue;
      }
      const Node& n = it->second;
      const Inode& want = model_.inode(id);
      std::ostringstream p;
      if (!n.error.empty()) p << " error(" << n.error << ")";
      if (n.type != want.type) p << " type " << n.type << " want " << want.type;
      if (want.type != 'l' && n.perm != want.perm) {
        p << " mode 0" << std::oct << n.perm << " want 0" << want.perm << std::dec;
      }
      if (want.type == 'f') {
        if (n.size != want.content.size()) {
          p << " size " << n.size << " want " << want.content.size();
        } else if (n.hash != Fnv1a(want.content)) {
          p << " content differs";
        }
        if (n.nlink != static_cast<nlink_t>(model_.LinkCount(id))) {
          p << " nlink " << n.nlink << " want " << model_.LinkCount(id);
        }
        auto [slot, fresh] = ino_of_inode.emplace(id, n.ino);
        if (!fresh && slot->second != n.ino) p << " not the same inode as its hard link";
      }
      if (want.type == 'l' && n.target != want.target) {
        p << " symlink target '" << n.target << "' want '" << want.target << "'";
      }
      if (want.type != 'l' && n.xattrs != want.xattrs) {
        p << " xattrs " << Describe(n.xattrs) << " want " << Describe(want.xattrs);
      }
      if (want.type == 'd' && before != nullptr) {
        auto b = before->find(path);
        if (b != before->end() && b->second.nlink != n.nlink) {
          p << " dir nlink " << n.nlink << " was " << b->second.nlink;
        }
      }
      if (!p.str().empty()) problems.push_back(path + ":" + p.str());
    }
    for (const auto& [path, node] : got) {
      if (!model_.Has(path) && lenient.count(path) == 0) {
        problems.push_back(path + ": unexpected entry (type " + node.type + ") " + node.error);
      }
    }
    std::string joined;
    for (const auto& p : problems) joined += "\n  " + p;
    EXPECT_TRUE(problems.empty()) << when << ", the mount differs from what was written:" << joined;
  }

  // The file that was open during the crash: its data went to the backing
  // file, so it must be intact or at least have the written length, and
  // reading it must not fail. Afterwards it is an ordinary known file.
  void CheckOpenFileAfterCrash(const OpenFile& f) {
    const Node n = Inspect(Abs(f.rel));
    ASSERT_EQ(n.error, "") << f.rel << " (open during the crash)";
    ASSERT_EQ(n.type, 'f') << f.rel;
    EXPECT_EQ(n.perm, 0644u) << f.rel;
    const bool intact = n.size == f.written.size() && n.hash == Fnv1a(f.written);
    EXPECT_TRUE(intact || n.size == f.written.size())
        << f.rel << " (open during the crash) has size " << n.size << ", want " << f.written.size();
    if (!intact && n.size == f.written.size()) {
      std::cout << "[note] " << f.rel << " has the written length but other content\n";
    }
    std::string content;
    int fd = open(Abs(f.rel).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << Errno();
    char buf[65536];
    ssize_t r;
    while ((r = read(fd, buf, sizeof(buf))) > 0) content.append(buf, static_cast<size_t>(r));
    EXPECT_EQ(r, 0) << "reading " << f.rel << ": " << Errno();
    close(fd);
    model_.Add(f.rel, Inode{'f', 0644, content, "", {}});
  }

  // SIGKILL the daemon, check the dead mount, clean it up with `tempfs
  // umount` and mount the same store again.
  void CrashAndRemount() {
    const std::string& mnt = mount_->mnt();
    mount_->KillDaemon(SIGKILL);
    ASSERT_FALSE(HasFatalFailure());
    int last_errno = 0;
    const bool dead = WaitFor(
        [&] {
          struct stat st {};
          last_errno = stat(mnt.c_str(), &st) == 0 ? 0 : errno;
          return last_errno == ENOTCONN;
        },
        std::chrono::milliseconds(10000));
    EXPECT_TRUE(dead) << "stat(" << mnt << ") after SIGKILL: "
                      << (last_errno == 0 ? "succeeded" : std::strerror(last_errno))
                      << ", want ENOTCONN";
    // Our descriptors on the dead mount stay open, as an application's would.
    const CommandResult r = mount_->Unmount();
    EXPECT_EQ(r.exit_code, 0) << "tempfs umount of the dead mount: " << r.err;
    EXPECT_FALSE(IsMountPoint(mnt)) << "still a mount point after tempfs umount";
    ASSERT_TRUE(mount_->Remount()) << "mounting the store again after the crash";
  }

  void ExpectGone(const std::string& rel) {
    struct stat st {};
    const int rc = lstat(Abs(rel).c_str(), &st);
    const int err = errno;
    EXPECT_NE(rc, 0) << rel << " (unlinked while open) came back";
    if (rc != 0) {
      EXPECT_EQ(err, ENOENT) << rel << ": " << std::strerror(err);
    }
  }

  void PopulateRound1() {
    PutFile("empty", "", 0644, /*do_fsync=*/false);
    PutFile("small4k", Pattern(1, 4096), 0600, true);
    PutFile("big10m", Pattern(2, 10 * kMiB), 0640, true);
    PutFile("odd", Pattern(3, 12345), 0644, false);
    Mkdir("tree", 0755);
    Mkdir("tree/a", 0750);
    Mkdir("tree/a/b", 0700);
    Mkdir("tree/a/b/c", 0755);
    PutFile("tree/a/f1", Pattern(4, 100), 0644, false);
    PutFile("tree/a/b/c/deep", Pattern(5, 70000), 0444, true);
    Symlink("small4k", "link-to-small");
    Symlink("/nonexistent/target", "dangling");
    Symlink("a/b/c/deep", "tree/rel-link");
    Link("small4k", "tree/hard");
    PutFile("tmpname", Pattern(6, 5000), 0644, false);
    Rename("tmpname", "renamed");
    Mkdir("tree/old", 0755);
    PutFile("tree/old/inside", Pattern(7, 3000), 0644, true);
    Rename("tree/old", "tree/new");
    PutFile("victim", Pattern(8, 2000), 0644, true);
    PutFile("replacer", Pattern(9, 3000), 0644, false);
    Rename("replacer", "victim");
    PutFile("chmodded", Pattern(10, 10), 0644, false);
    Chmod("chmodded", 0751);
    PutFile("truncated", Pattern(11, 8192), 0644, false);
    Truncate("truncated", 1000);
    SetXattr("small4k", "user.color", "blue");
    SetXattr("odd", "user.empty", "");
    SetXattr("tree", "user.dir", "yes");
    SetXattr("big10m", "user.binary", std::string("a\0b\0c", 5) + Pattern(12, 300));
    SetXattr("odd", "user.gone", "x");
    RemoveXattr("odd", "user.gone");
  }

  void ModifyRound2() {
    Append("odd", Pattern(20, 5000));
    Overwrite("small4k", 1000, Pattern(21, 100));
    Unlink("tree/hard");
    Link("big10m", "tree/a/hard2");
    Rename("renamed", "tree/a/b/moved");
    SetXattr("big10m", "user.round", "2");
    RemoveXattr("small4k", "user.color");
    PutFile("round2-1m", Pattern(22, kMiB), 0600, true);
    Mkdir("emptydir", 0711);
    Unlink("tree/new/inside");
    Rmdir("tree/new");
    Unlink("empty");
    Rename("victim", "tree/victim-moved");
    Truncate("truncated", 20000);  // grows: the hole must read as zeros
  }

  // Members in this order so the mount goes before its directory.
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<TempfsMount> mount_;
  Model model_;
  std::vector<int> stale_fds_;
};

TEST_F(CrashTest, ClosedFilesSurviveTwoDaemonKills) {
  // Round 1: populate, keep one file open and one unlinked-but-open, crash.
  PopulateRound1();
  const OpenFile open1 = KeepOpen("open-during-crash-1", Pattern(30, 64 * 1024));
  KeepUnlinkedOpen("ghost-1");
  ASSERT_FALSE(HasFailure()) << "setting up the files failed";
  const Tree before1 = Snapshot(mount_->mnt());
  ExpectMatchesModel(before1, {open1.rel}, nullptr, "before the first crash");
  ASSERT_FALSE(HasFailure());

  CrashAndRemount();
  ASSERT_FALSE(HasFatalFailure());
  ExpectMatchesModel(Snapshot(mount_->mnt()), {open1.rel}, &before1,
                     "after the first crash and remount");
  CheckOpenFileAfterCrash(open1);
  ExpectGone("ghost-1");

  // Round 2: change things on the recovered mount, then crash again.
  ModifyRound2();
  const OpenFile open2 = KeepOpen("tree/a/open-during-crash-2", Pattern(31, 300 * 1024));
  KeepUnlinkedOpen("tree/ghost-2");
  ASSERT_FALSE(HasFailure()) << "changing the files after the first crash failed";
  const Tree before2 = Snapshot(mount_->mnt());
  ExpectMatchesModel(before2, {open2.rel}, nullptr, "before the second crash");

  CrashAndRemount();
  ASSERT_FALSE(HasFatalFailure());
  ExpectMatchesModel(Snapshot(mount_->mnt()), {open2.rel}, &before2,
                     "after the second crash and remount");
  CheckOpenFileAfterCrash(open2);
  ExpectGone("ghost-1");
  ExpectGone("tree/ghost-2");
}

}  // namespace
}  // namespace tempfs::testing
