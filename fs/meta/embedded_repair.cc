// EmbeddedMeta's recovery half: the tree repairs fsck makes after loading
// whatever records of a damaged journal or snapshot could be read. Records
// are state (this inode has these attributes, this name points there), so a
// namespace rebuilt from a subset of them is made whole again by these rules:
// a name must point to an inode, every inode with links left must be reached
// from the root, and link counts are what the names say.
#include <sys/stat.h>

#include <algorithm>
#include <deque>
#include <mutex>
#include <unordered_set>

#include "meta/embedded_meta.h"

namespace tempfs {
namespace {

constexpr char kLostAndFound[] = "lost+found";

InodeRecord NewRecord(Ino ino, uint32_t mode, uint32_t nlink) {
  InodeRecord r;
  r.attr.ino = ino;
  r.attr.mode = mode;
  r.attr.nlink = nlink;
  r.attr.atime_ns = r.attr.mtime_ns = r.attr.ctime_ns = NowNs();
  return r;
}

}  // namespace

Ino EmbeddedMeta::LostAndFound() {
  Node& root = nodes_[kRootIno];
  std::string name = kLostAndFound;
  for (int i = 1;; i++) {
    auto it = root.children.find(name);
    if (it == root.children.end()) break;
    Node* n = Find(it->second.ino);
    if (n != nullptr && S_ISDIR(n->rec.attr.mode)) return it->second.ino;
    name = std::string(kLostAndFound) + "." + std::to_string(i);
  }
  Ino ino = next_ino_++;
  Node& d = nodes_[ino];
  d.rec = NewRecord(ino, S_IFDIR | 0700, 2);
  d.rec.attr.size = 4096;
  d.rec.parent = kRootIno;
  nodes_[kRootIno].children.insert_or_assign(name, Child{ino, S_IFDIR});
  return ino;
}

void EmbeddedMeta::NameInLostAndFound(Ino ino) {
  Ino dir = LostAndFound();
  Node& d = nodes_[dir];
  std::string name = "#" + std::to_string(ino);
  for (int i = 1; d.children.count(name) != 0; i++) name = "#" + std::to_string(ino) + "." + std::to_string(i);
  Node& n = nodes_[ino];
  d.children.insert_or_assign(name, Child{ino, n.rec.attr.mode & S_IFMT});
  if (S_ISDIR(n.rec.attr.mode)) n.rec.parent = dir;
}

// Marks everything reachable from directory `from` (already in parent_of).
// A directory reached a second time loses that extra name: a directory has one.
void EmbeddedMeta::Reach(Ino from, std::unordered_map<Ino, Ino>& parent_of, TreeRepair& r) {
  std::deque<Ino> queue{from};
  while (!queue.empty()) {
    Ino dir = queue.front();
    queue.pop_front();
    Node* d = Find(dir);
    if (d == nullptr) continue;
    for (auto it = d->children.begin(); it != d->children.end();) {
      Ino child = it->second.ino;
      Node* c = Find(child);
      bool is_dir = c != nullptr && S_ISDIR(c->rec.attr.mode);
      if (is_dir && (parent_of.count(child) != 0 || child == kRootIno)) {
        it = d->children.erase(it);
        r.names_removed++;
        continue;
      }
      if (is_dir) {
        parent_of[child] = dir;
        queue.push_back(child);
      } else {
        parent_of.try_emplace(child, dir);
      }
      ++it;
    }
  }
}

TreeRepair EmbeddedMeta::RepairTree() {
  std::unique_lock lock(mu_);
  TreeRepair r;
  // Placeholders of directories whose names were read but whose record was lost.
  for (auto& [ino, n] : nodes_) {
    if (n.rec.attr.mode != 0 || ino == kRootIno) continue;
    n.rec = NewRecord(ino, S_IFDIR | 0700, 2);
    n.rec.attr.size = 4096;
    r.dirs_rebuilt++;
  }
  Node* root = Find(kRootIno);
  if (root == nullptr || !S_ISDIR(root->rec.attr.mode)) {
    // A root record that is not a directory is damage too; its names (if any) stay.
    Node& n = nodes_[kRootIno];  // its names, if any were read, stay
    n.rec = NewRecord(kRootIno, S_IFDIR | 0755, 2);
    n.rec.attr.size = 4096;
    r.root_made = true;
  }
  // Names must point to inodes of the type they say.
  for (auto& [ino, n] : nodes_) {
    if (!S_ISDIR(n.rec.attr.mode)) {
      r.names_removed += n.children.size();
      n.children.clear();
      continue;
    }
    for (auto it = n.children.begin(); it != n.children.end();) {
      Node* c = Find(it->second.ino);
      if (c == nullptr) {
        it = n.children.erase(it);
        r.names_removed++;
        continue;
      }
      uint32_t type = c->rec.attr.mode & S_IFMT;
      if (it->second.type != type) {
        it->second.type = type;
        r.names_fixed++;
      }
      ++it;
    }
  }
  // Everything with links left must be reached from the root.
  std::unordered_map<Ino, Ino> parent_of{{kRootIno, kRootIno}};
  Reach(kRootIno, parent_of, r);
  std::vector<Ino> unreached;
  for (auto& [ino, n] : nodes_) {
    if (parent_of.count(ino) == 0) unreached.push_back(ino);
  }
  std::sort(unreached.begin(), unreached.end());
  // The tops of unreached subtrees first (nothing names them), then what is
  // left (directories naming each other in a cycle).
  std::unordered_set<Ino> named;
  for (Ino ino : unreached) {
    for (auto& [name, c] : nodes_[ino].children) named.insert(c.ino);
  }
  for (int pass = 0; pass < 2; pass++) {
    for (Ino ino : unreached) {
      if (parent_of.count(ino) != 0 || (pass == 0 && named.count(ino) != 0)) continue;
      Node& n = nodes_[ino];
      // Unlinked but still open when the daemon stopped: the next start drops it.
      if (n.rec.attr.nlink == 0 && named.count(ino) == 0) continue;
      NameInLostAndFound(ino);
      Ino lf = LostAndFound();
      parent_of.try_emplace(lf, kRootIno);
      parent_of[ino] = lf;
      r.linked++;
      if (S_ISDIR(n.rec.attr.mode)) Reach(ino, parent_of, r);
    }
  }
  // Link counts are what the names say.
  std::unordered_map<Ino, uint32_t> names, subdirs;
  for (auto& [ino, n] : nodes_) {
    if (parent_of.count(ino) == 0) continue;
    for (auto& [name, c] : n.children) {
      names[c.ino]++;
      if (c.type == S_IFDIR) subdirs[ino]++;
    }
  }
  for (auto& [ino, n] : nodes_) {
    if (parent_of.count(ino) == 0) continue;
    bool dir = S_ISDIR(n.rec.attr.mode);
    uint32_t want = dir ? 2 + subdirs[ino] : names[ino];
    if (n.rec.attr.nlink != want) {
      n.rec.attr.nlink = want;
      r.nlinks_fixed++;
    }
    if (dir && n.rec.parent != parent_of[ino]) n.rec.parent = parent_of[ino];
  }
  return r;
}

Status EmbeddedMeta::AdoptData(Ino ino, uint64_t size) {
  std::unique_lock lock(mu_);
  if (Find(ino) != nullptr) return Status::Err(EEXIST, "inode " + std::to_string(ino) + " exists");
  if (Find(kRootIno) == nullptr) return Status::Err(ENOENT, "no root: repair the tree first");
  Node& n = nodes_[ino];
  n.rec = NewRecord(ino, S_IFREG | 0600, 1);
  n.rec.attr.size = size;
  next_ino_ = std::max(next_ino_, ino + 1);
  NameInLostAndFound(ino);
  // lost+found may be new: its parent counts one more directory.
  for (Ino dir : {kRootIno, LostAndFound()}) {
    Node& d = nodes_[dir];
    d.rec.attr.nlink = 2;
    for (auto& [name, c] : d.children) d.rec.attr.nlink += c.type == S_IFDIR;
  }
  return Status::Ok();
}

bool EmbeddedMeta::IsRegularFile(Ino ino) {
  std::shared_lock lock(mu_);
  Node* n = Find(ino);
  return n != nullptr && S_ISREG(n->rec.attr.mode);
}

}  // namespace tempfs
