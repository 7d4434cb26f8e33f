// Model-based random test of the metadata engines: random namespace
// operations run against an engine and against a small in-memory model of a
// Linux filesystem; every errno, the result of every successful operation and
// the whole tree (also after reopening the engine) must agree.
//
// The seed is printed; TEMPFS_TEST_SEED=<n> replays a run.
//
// Where several errors apply to one call, POSIX lets the implementation
// report any of them ("the order of detection is undefined"), so the model
// computes the set of applicable errnos and the engine must return one of
// them. The model itself is checked against the running kernel
// (MetaModelOracle.MatchesHostKernel), so that it encodes Linux, not our guess.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "meta/meta_engine.h"
#include "meta_test_util.h"

namespace tempfs {
namespace {

using testutil::EngineFactory;
using testutil::ErrName;
using testutil::TempDir;

constexpr int kOps = 5000;

uint64_t PickSeed() {
  if (const char* env = getenv("TEMPFS_TEST_SEED"); env != nullptr && *env != '\0') {
    return strtoull(env, nullptr, 0);
  }
  return std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32) ^
         static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  // Uniform in [0, n); the same sequence on every platform.
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(g_() % n); }
  bool Percent(int p) { return static_cast<int>(Below(100)) < p; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) { return v[Below(v.size())]; }

 private:
  std::mt19937_64 g_;
};

// ------------------------------------------------------------------ ops

enum class Kind { kCreate, kLink, kUnlink, kRmdir, kRename, kSetMode, kDrop };

struct Op {
  Kind kind;
  Ino a = 0;          // parent (create/unlink/rmdir/rename), inode (link/setmode/drop)
  std::string name;   // name in a
  Ino b = 0;          // new parent (link/rename)
  std::string name2;  // new name
  uint32_t mode = 0;  // create: type and permissions; setmode: requested mode
  unsigned flags = 0;
  std::string target;
};

std::string Describe(const Op& op) {
  std::ostringstream o;
  switch (op.kind) {
    case Kind::kCreate:
      o << "Create(" << op.a << ", " << op.name << ", 0" << std::oct << op.mode << std::dec << ")";
      break;
    case Kind::kLink: o << "Link(" << op.a << ", " << op.b << ", " << op.name2 << ")"; break;
    case Kind::kUnlink: o << "Unlink(" << op.a << ", " << op.name << ")"; break;
    case Kind::kRmdir: o << "Rmdir(" << op.a << ", " << op.name << ")"; break;
    case Kind::kRename:
      o << "Rename(" << op.a << ", " << op.name << ", " << op.b << ", " << op.name2 << ", flags=" << op.flags << ")";
      break;
    case Kind::kSetMode: o << "SetAttr(" << op.a << ", mode=0" << std::oct << op.mode << std::dec << ")"; break;
    case Kind::kDrop: o << "Drop(" << op.a << ")"; break;
  }
  return o.str();
}

// "Rename flags=1", "Unlink": what an op is, without its arguments.
std::string OpClass(const Op& op) {
  std::string d = Describe(op);
  d = d.substr(0, d.find('('));
  if (op.kind == Kind::kRename) d += " flags=" + std::to_string(op.flags);
  return d;
}

std::string SetString(const std::set<int>& s) {
  if (s.empty()) return "{OK}";
  std::string out = "{";
  for (int e : s) out += (out.size() > 1 ? "," : "") + ErrName(e);
  return out + "}";
}

// ------------------------------------------------------------------ model

class Model {
 public:
  struct Node {
    Ino ino = 0;
    uint32_t mode = 0;
    uint32_t nlink = 0;
    Ino parent = 0;  // directories
    std::string target;
    std::map<std::string, Ino> children;
  };

  Model() {
    Node root;
    root.ino = kRootIno;
    root.mode = S_IFDIR | 0755;
    root.nlink = 2;
    root.parent = kRootIno;
    nodes_[kRootIno] = root;
  }

  const std::map<Ino, Node>& nodes() const { return nodes_; }
  const Node* Find(Ino ino) const {
    auto it = nodes_.find(ino);
    return it == nodes_.end() ? nullptr : &it->second;
  }
  static bool IsDir(const Node& n) { return S_ISDIR(n.mode); }

  // The errnos the call may fail with; empty: it must succeed.
  std::set<int> Expect(const Op& op) const {
    std::set<int> errs;
    switch (op.kind) {
      case Kind::kCreate: {
        if (int e = DirErr(op.a)) return {e};
        if (Child(op.a, op.name) != nullptr) errs.insert(EEXIST);
        break;
      }
      case Kind::kLink: {
        const Node* n = Find(op.a);
        if (n == nullptr || n->nlink == 0) errs.insert(ENOENT);
        else if (IsDir(*n)) errs.insert(EPERM);
        if (int e = DirErr(op.b)) errs.insert(e);
        else if (Child(op.b, op.name2) != nullptr) errs.insert(EEXIST);
        break;
      }
      case Kind::kUnlink: {
        if (int e = DirErr(op.a)) return {e};
        const Node* c = Child(op.a, op.name);
        if (c == nullptr) errs.insert(ENOENT);
        else if (IsDir(*c)) errs.insert(EISDIR);
        break;
      }
      case Kind::kRmdir: {
        if (int e = DirErr(op.a)) return {e};
        const Node* c = Child(op.a, op.name);
        if (c == nullptr) errs.insert(ENOENT);
        else if (!IsDir(*c)) errs.insert(ENOTDIR);
        else if (!c->children.empty()) errs.insert(ENOTEMPTY);
        break;
      }
      case Kind::kRename:
        return ExpectRename(op);
      case Kind::kSetMode:
        if (Find(op.a) == nullptr) errs.insert(ENOENT);
        break;
      case Kind::kDrop: {
        const Node* n = Find(op.a);
        if (n != nullptr && n->nlink != 0) errs.insert(EBUSY);
        break;
      }
    }
    return errs;
  }

  // Applies an operation that succeeded; `new_ino` is the created inode.
  void Apply(const Op& op, Ino new_ino) {
    switch (op.kind) {
      case Kind::kCreate: {
        Node n;
        n.ino = new_ino;
        n.mode = op.mode;
        n.nlink = IsDir(n) ? 2 : 1;
        n.parent = op.a;
        n.target = op.target;
        nodes_[new_ino] = n;
        nodes_[op.a].children[op.name] = new_ino;
        if (IsDir(n)) nodes_[op.a].nlink++;
        break;
      }
      case Kind::kLink:
        nodes_[op.a].nlink++;
        nodes_[op.b].children[op.name2] = op.a;
        break;
      case Kind::kUnlink: {
        Node& p = nodes_[op.a];
        Ino c = p.children.at(op.name);
        p.children.erase(op.name);
        nodes_[c].nlink--;
        break;
      }
      case Kind::kRmdir: {
        Node& p = nodes_[op.a];
        Ino c = p.children.at(op.name);
        p.children.erase(op.name);
        nodes_[c].nlink = 0;
        p.nlink--;
        break;
      }
      case Kind::kRename:
        ApplyRename(op);
        break;
      case Kind::kSetMode: {
        Node& n = nodes_[op.a];
        n.mode = (n.mode & S_IFMT) | (op.mode & 07777);
        break;
      }
      case Kind::kDrop:
        nodes_.erase(op.a);
        break;
    }
  }

  // What a successful rename took a name from: (inode, its nlink afterwards).
  std::optional<std::pair<Ino, uint32_t>> RenameVictim(const Op& op) const {
    if (op.flags & kRenameExchange) return std::nullopt;
    const Node* s = Child(op.a, op.name);
    const Node* d = Child(op.b, op.name2);
    if (d == nullptr || d == s) return std::nullopt;
    return std::make_pair(d->ino, IsDir(*d) ? 0u : d->nlink - 1);
  }

  // Path of a live directory ("/a/b"), for messages.
  std::string DirPath(Ino dir) const {
    std::string path;
    for (Ino cur = dir; cur != kRootIno;) {
      const Node* n = Find(cur);
      if (n == nullptr || n->nlink == 0) return "<removed " + std::to_string(dir) + ">" + path;
      const Node* p = Find(n->parent);
      std::string name = "?";
      for (auto& [k, v] : p->children) {
        if (v == cur) name = k;
      }
      path = "/" + name + path;
      cur = n->parent;
    }
    return path.empty() ? "/" : path;
  }

 private:
  // ENOENT/ENOTDIR for something used as a parent directory, else 0.
  int DirErr(Ino ino) const {
    const Node* n = Find(ino);
    if (n == nullptr) return ENOENT;
    if (!IsDir(*n)) return ENOTDIR;
    if (n->nlink == 0) return ENOENT;
    return 0;
  }
  const Node* Child(Ino dir, const std::string& name) const {
    const Node* p = Find(dir);
    if (p == nullptr) return nullptr;
    auto it = p->children.find(name);
    return it == p->children.end() ? nullptr : Find(it->second);
  }
  // True if live directory `dir` is `top` or below it.
  bool Within(Ino dir, Ino top) const {
    for (Ino cur = dir;;) {
      if (cur == top) return true;
      if (cur == kRootIno) return false;
      cur = Find(cur)->parent;
    }
  }

  std::set<int> ExpectRename(const Op& op) const {
    std::set<int> errs;
    if ((op.flags & ~(kRenameNoReplace | kRenameExchange)) != 0 ||
        op.flags == (kRenameNoReplace | kRenameExchange)) {
      errs.insert(EINVAL);
    }
    int pe = DirErr(op.a), qe = DirErr(op.b);
    if (pe != 0) errs.insert(pe);
    if (qe != 0) errs.insert(qe);
    if (pe != 0 || qe != 0) return errs;
    const Node* s = Child(op.a, op.name);
    const Node* d = Child(op.b, op.name2);
    bool exchange = op.flags & kRenameExchange;
    if (s == nullptr) errs.insert(ENOENT);
    if (exchange && d == nullptr) errs.insert(ENOENT);
    if (s == nullptr) return errs;
    // Linux: RENAME_NOREPLACE fails on any existing target, checked before
    // the "same inode: do nothing" rule.
    if (d != nullptr && (op.flags & kRenameNoReplace)) errs.insert(EEXIST);
    if (d == s) return errs;
    if (IsDir(*s) && Within(op.b, s->ino)) errs.insert(EINVAL);
    if (d != nullptr) {
      if (exchange) {
        if (IsDir(*d) && Within(op.a, d->ino)) errs.insert(EINVAL);
      } else {
        // Linux reports ENOTEMPTY when the target is an ancestor of the source.
        if (IsDir(*d) && Within(op.a, d->ino)) errs.insert(ENOTEMPTY);
        if (IsDir(*s) && !IsDir(*d)) errs.insert(ENOTDIR);
        if (!IsDir(*s) && IsDir(*d)) errs.insert(EISDIR);
        if (IsDir(*d) && !d->children.empty()) errs.insert(ENOTEMPTY);
      }
    }
    return errs;
  }

  void ApplyRename(const Op& op) {
    Node& p = nodes_[op.a];
    Node& q = nodes_[op.b];
    Ino s = p.children.at(op.name);
    auto dit = q.children.find(op.name2);
    std::optional<Ino> d;
    if (dit != q.children.end()) d = dit->second;
    if (d == s) return;
    Node& sn = nodes_[s];
    if (op.flags & kRenameExchange) {
      Node& dn = nodes_[*d];
      p.children[op.name] = *d;
      q.children[op.name2] = s;
      if (IsDir(sn)) sn.parent = op.b;
      if (IsDir(dn)) dn.parent = op.a;
      if (op.a != op.b && IsDir(sn) != IsDir(dn)) {
        if (IsDir(sn)) {
          p.nlink--;
          q.nlink++;
        } else {
          p.nlink++;
          q.nlink--;
        }
      }
      return;
    }
    if (d) {
      Node& dn = nodes_[*d];
      if (IsDir(dn)) {
        dn.nlink = 0;
        q.nlink--;
      } else {
        dn.nlink--;
      }
    }
    p.children.erase(op.name);
    q.children[op.name2] = s;
    if (IsDir(sn)) {
      sn.parent = op.b;
      if (op.a != op.b) {
        p.nlink--;
        q.nlink++;
      }
    }
  }

  std::map<Ino, Node> nodes_;
};

// ------------------------------------------------------------------ generator

const std::vector<std::string> kNames = {"a", "b", "c", "d", "e"};

class Generator {
 public:
  Generator(Rng& rng, bool with_setmode, bool with_drop) : rng_(rng), setmode_(with_setmode), drop_(with_drop) {}

  Op Next(const Model& m) {
    Collect(m);
    Op op;
    size_t r = rng_.Below(100);
    if (r < 30) {
      op.kind = Kind::kCreate;
      op.a = SomeDir();
      op.name = rng_.Pick(kNames);
      size_t t = rng_.Below(10);
      if (t < 4) {
        op.mode = S_IFREG | 0644;
      } else if (t < 8) {
        op.mode = S_IFDIR | 0755;
      } else if (t < 9) {
        op.mode = S_IFLNK | 0777;
        op.target = "target-" + std::to_string(rng_.Below(1000));
      } else {
        op.mode = S_IFIFO | 0600;
      }
    } else if (r < 40) {
      op.kind = Kind::kLink;
      op.a = rng_.Pick(linked_);  // linked inodes only: see LinkOfUnlinkedInodeIsENOENT
      op.b = SomeDir();
      op.name2 = rng_.Pick(kNames);
    } else if (r < 52) {
      op.kind = Kind::kUnlink;
      SomeEntry(&op.a, &op.name);
    } else if (r < 62) {
      op.kind = Kind::kRmdir;
      SomeEntry(&op.a, &op.name);
    } else if (r < 90) {
      op.kind = Kind::kRename;
      SomeEntry(&op.a, &op.name);
      op.b = rng_.Percent(30) ? op.a : SomeDir();
      op.name2 = rng_.Pick(kNames);
      size_t f = rng_.Below(100);
      op.flags = f < 55 ? 0 : f < 70 ? kRenameNoReplace : f < 96 ? kRenameExchange : kRenameNoReplace | kRenameExchange;
    } else if (r < 95 && setmode_) {
      op.kind = Kind::kSetMode;
      op.a = rng_.Pick(all_);
      op.mode = static_cast<uint32_t>(rng_.Below(1u << 16));  // type bits included on purpose
    } else if (drop_) {
      op.kind = Kind::kDrop;
      op.a = !orphans_.empty() && rng_.Percent(80) ? rng_.Pick(orphans_) : rng_.Pick(all_);
    } else {
      op.kind = Kind::kUnlink;
      SomeEntry(&op.a, &op.name);
    }
    return op;
  }

 private:
  void Collect(const Model& m) {
    dirs_.clear();
    nondirs_.clear();
    dead_dirs_.clear();
    all_.clear();
    linked_.clear();
    orphans_.clear();
    for (auto& [ino, n] : m.nodes()) {
      all_.push_back(ino);
      if (n.nlink == 0) orphans_.push_back(ino);
      else linked_.push_back(ino);
      if (Model::IsDir(n)) (n.nlink == 0 ? dead_dirs_ : dirs_).push_back(ino);
      else nondirs_.push_back(ino);
    }
    entries_.clear();
    for (Ino d : dirs_) {
      for (auto& [name, c] : m.Find(d)->children) entries_.emplace_back(d, name);
    }
  }
  // Mostly a live directory; sometimes something that is not one.
  Ino SomeDir() {
    size_t r = rng_.Below(100);
    if (r < 5 && !nondirs_.empty()) return rng_.Pick(nondirs_);
    if (r < 8 && !dead_dirs_.empty()) return rng_.Pick(dead_dirs_);
    return rng_.Pick(dirs_);
  }
  // Mostly an existing name.
  void SomeEntry(Ino* dir, std::string* name) {
    if (!entries_.empty() && rng_.Percent(80)) {
      const auto& e = rng_.Pick(entries_);
      *dir = e.first;
      *name = e.second;
    } else {
      *dir = SomeDir();
      *name = rng_.Pick(kNames);
    }
  }

  Rng& rng_;
  bool setmode_, drop_;
  std::vector<Ino> dirs_, nondirs_, dead_dirs_, all_, linked_, orphans_;
  std::vector<std::pair<Ino, std::string>> entries_;
};

// ------------------------------------------------------------------ engine run

struct Outcome {
  int err = 0;
  std::optional<Attr> attr;                 // create, link, unlink, rmdir, setattr
  std::optional<std::optional<Attr>> victim;  // rename
};

Outcome RunOnEngine(MetaEngine& m, const Op& op) {
  Outcome out;
  auto take = [&](Result<Attr> r) {
    out.err = r.err();
    if (r.ok()) out.attr = *r;
  };
  switch (op.kind) {
    case Kind::kCreate: {
      NewNode n;
      n.mode = op.mode;
      n.target = op.target;
      take(m.Create(op.a, op.name, n));
      break;
    }
    case Kind::kLink: take(m.Link(op.a, op.b, op.name2)); break;
    case Kind::kUnlink: take(m.Unlink(op.a, op.name)); break;
    case Kind::kRmdir: take(m.Rmdir(op.a, op.name)); break;
    case Kind::kRename: {
      auto r = m.Rename(op.a, op.name, op.b, op.name2, op.flags);
      out.err = r.err();
      if (r.ok()) out.victim = *r;
      break;
    }
    case Kind::kSetMode: {
      SetAttrRequest req;
      req.valid = SetAttrRequest::kMode;
      req.mode = op.mode;
      take(m.SetAttr(op.a, req));
      break;
    }
    case Kind::kDrop: out.err = m.Drop(op.a).err(); break;
  }
  return out;
}

// Compares the engine's namespace with the model's; returns false (after
// reporting) on any difference in the tree. The orphan list and the inode
// count are bookkeeping: a difference there is reported once per run (in
// `reported`) and does not stop the run.
bool SameTree(MetaEngine& m, const Model& model, const std::string& when, std::set<std::string>* reported) {
  int before = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
  for (auto& [ino, n] : model.nodes()) {
    auto a = m.GetAttr(ino);
    if (!a.ok()) {
      ADD_FAILURE() << when << ": inode " << ino << " missing in engine: " << a.status().ToString();
      continue;
    }
    EXPECT_EQ(a->mode & S_IFMT, n.mode & S_IFMT) << when << ": type of inode " << ino;
    EXPECT_EQ(a->mode & 07777, n.mode & 07777) << when << ": permissions of inode " << ino;
    EXPECT_EQ(a->nlink, n.nlink) << when << ": nlink of inode " << ino << " (" << model.DirPath(ino) << ")";
    if (S_ISLNK(n.mode)) {
      auto t = m.ReadLink(ino);
      EXPECT_TRUE(t.ok() && *t == n.target) << when << ": target of " << ino;
    }
    if (Model::IsDir(n) && n.nlink > 0) {
      auto es = m.ReadDir(ino);
      if (!es.ok()) {
        ADD_FAILURE() << when << ": ReadDir " << ino << ": " << es.status().ToString();
        continue;
      }
      std::map<std::string, Ino> got;
      for (auto& e : *es) {
        got[e.name] = e.ino;
        EXPECT_EQ(e.mode & S_IFMT, model.Find(e.ino) ? model.Find(e.ino)->mode & S_IFMT : 0u)
            << when << ": entry type of " << model.DirPath(ino) << "/" << e.name;
      }
      EXPECT_EQ(got, n.children) << when << ": entries of " << model.DirPath(ino);
      for (auto& [name, child] : n.children) {
        auto l = m.Lookup(ino, name);
        EXPECT_TRUE(l.ok() && l->ino == child) << when << ": Lookup " << model.DirPath(ino) << "/" << name;
      }
    }
  }
  bool tree_ok = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count() == before;
  std::vector<Ino> want_orphans;
  for (auto& [ino, n] : model.nodes()) {
    if (n.nlink == 0) want_orphans.push_back(ino);
  }
  auto o = m.Orphans();
  std::vector<Ino> got_orphans;
  if (o.ok()) got_orphans = *o;
  std::sort(got_orphans.begin(), got_orphans.end());
  if ((!o.ok() || got_orphans != want_orphans) && reported->insert("orphans").second) {
    ADD_FAILURE() << when << ": Orphans() differs (reported once): got " << ::testing::PrintToString(got_orphans)
                  << ", want " << ::testing::PrintToString(want_orphans);
  }
  if (m.InodeCount() != model.nodes().size() && reported->insert("count").second) {
    ADD_FAILURE() << when << ": InodeCount() is " << m.InodeCount() << ", want " << model.nodes().size()
                  << " (reported once)";
  }
  return tree_ok;
}

class MetaModel : public ::testing::TestWithParam<EngineFactory> {
 protected:
  void SetUp() override {
    if (std::string why = GetParam().unavailable(); !why.empty()) GTEST_SKIP() << why;
    dir_ = std::make_unique<TempDir>("model");
    GetParam().wipe();
    wipe_ = true;
  }
  void TearDown() override {
    m_.reset();
    if (wipe_) GetParam().wipe();
    dir_.reset();
  }
  void Open() {
    m_.reset();
    auto r = GetParam().open(dir_->path());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    m_ = std::move(*r);
  }
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<MetaEngine> m_;
  bool wipe_ = false;
};

TEST_P(MetaModel, RandomOperationsMatchModel) {
  const uint64_t seed = PickSeed();
  std::cout << "[ seed     ] TEMPFS_TEST_SEED=" << seed << std::endl;
  RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("TEMPFS_TEST_SEED=" + std::to_string(seed));
  ASSERT_NO_FATAL_FAILURE(Open());

  Rng rng(seed);
  Model model;
  Generator gen(rng, /*with_setmode=*/true, /*with_drop=*/true);
  const bool persistent = GetParam().persistent;
  // Mismatches by kind ("Rename flags=1: want {EEXIST}, got OK"): each kind is
  // reported once with its first occurrence; the run goes on as long as the
  // namespaces agree, so that one bug does not hide the next.
  std::map<std::string, int> mismatches;
  std::set<std::string> reported;
  std::map<Kind, int> done;
  std::map<std::string, int> outcomes;  // "Rename ENOTEMPTY" -> count
  int succeeded = 0;

  for (int i = 0; i < kOps; i++) {
    if (persistent && i == kOps / 2) {
      ASSERT_TRUE(SameTree(*m_, model, "before the mid-run reopen", &reported));
      ASSERT_NO_FATAL_FAILURE(Open());
      ASSERT_TRUE(SameTree(*m_, model, "after the mid-run reopen", &reported));
    }
    if (i > 0 && i % 250 == 0 && !SameTree(*m_, model, "before op #" + std::to_string(i), &reported)) {
      FAIL() << "namespace diverged";
    }
    Op op = gen.Next(model);
    std::set<int> want = model.Expect(op);
    std::optional<std::pair<Ino, uint32_t>> victim;
    if (want.empty() && op.kind == Kind::kRename) victim = model.RenameVictim(op);
    Outcome got = RunOnEngine(*m_, op);
    done[op.kind]++;
    outcomes[OpClass(op) + " " + ErrName(got.err)]++;
    const std::string what = "op #" + std::to_string(i) + " " + Describe(op);
    bool ok = want.empty() ? got.err == 0 : want.count(got.err) != 0;
    if (!ok) {
      std::string sig = OpClass(op) + ": want " + SetString(want) + ", got " + ErrName(got.err);
      if (mismatches[sig]++ == 0) ADD_FAILURE() << what << ": want " << SetString(want) << ", got " << ErrName(got.err);
      // The engine changed something the model refused: compare right away.
      if (got.err == 0 && !SameTree(*m_, model, "after " + what, &reported)) FAIL() << "namespace diverged";
      continue;
    }
    if (got.err != 0) continue;
    succeeded++;
    // Check what the call returned, then update the model.
    switch (op.kind) {
      case Kind::kCreate:
        ASSERT_TRUE(got.attr.has_value());
        EXPECT_EQ(got.attr->mode, op.mode) << what;
        EXPECT_EQ(got.attr->nlink, S_ISDIR(op.mode) ? 2u : 1u) << what;
        ASSERT_EQ(model.Find(got.attr->ino), nullptr) << what << ": inode " << got.attr->ino << " reused";
        break;
      case Kind::kLink:
        EXPECT_EQ(got.attr->nlink, model.Find(op.a)->nlink + 1) << what;
        break;
      case Kind::kUnlink:
        EXPECT_EQ(got.attr->nlink, model.Find(model.Find(op.a)->children.at(op.name))->nlink - 1) << what;
        break;
      case Kind::kRmdir:
        EXPECT_EQ(got.attr->nlink, 0u) << what;
        break;
      case Kind::kRename:
        if (victim && victim->second == 0) {
          EXPECT_TRUE(got.victim->has_value()) << what << ": replaced inode " << victim->first << " not returned";
        }
        if (got.victim->has_value()) {
          EXPECT_TRUE(victim.has_value()) << what << ": returned inode " << (*got.victim)->ino << " was not replaced";
          if (victim) {
            EXPECT_EQ((*got.victim)->ino, victim->first) << what;
            EXPECT_EQ((*got.victim)->nlink, victim->second) << what;
          }
        }
        break;
      case Kind::kSetMode:
        EXPECT_EQ(got.attr->mode, (model.Find(op.a)->mode & S_IFMT) | (op.mode & 07777)) << what;
        break;
      case Kind::kDrop:
        break;
    }
    model.Apply(op, got.attr ? got.attr->ino : 0);
  }
  ASSERT_TRUE(SameTree(*m_, model, "at the end", &reported));
  if (persistent) {
    ASSERT_NO_FATAL_FAILURE(Open());
    ASSERT_TRUE(SameTree(*m_, model, "after the final reopen", &reported));
  }
  for (auto& [sig, n] : mismatches) ADD_FAILURE() << n << " x " << sig;
  std::cout << "[ outcomes ]";
  for (auto& [k, n] : outcomes) std::cout << " [" << k << "]:" << n;
  std::cout << std::endl;
  // The run must have exercised every kind of operation, successes included.
  EXPECT_GT(succeeded, kOps / 4);
  for (Kind k : {Kind::kCreate, Kind::kLink, Kind::kUnlink, Kind::kRmdir, Kind::kRename, Kind::kSetMode, Kind::kDrop}) {
    EXPECT_GT(done[k], 50) << "op kind " << static_cast<int>(k);
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, MetaModel, ::testing::ValuesIn(testutil::EngineFactories()),
                         testutil::FactoryName);

// ------------------------------------------------------------------ oracle

// Runs the same kind of random operations against a real directory of the
// host kernel and checks that the model predicts its errnos and link counts:
// the model is Linux, not our reading of it. Inodes are addressed by O_PATH
// descriptors, so removed directories and unlinked files stay reachable.
class HostFs {
 public:
  explicit HostFs(int root_fd) { fds_[kRootIno] = root_fd; }
  ~HostFs() {
    for (auto& [ino, fd] : fds_) close(fd);
  }
  int Fd(Ino ino) const { return fds_.at(ino); }

  // Returns 0 or errno. `next_ino` names a created node.
  int Run(const Op& op, Ino next_ino) {
    int rc = 0;
    switch (op.kind) {
      case Kind::kCreate: {
        int p = Fd(op.a);
        if (S_ISDIR(op.mode)) rc = mkdirat(p, op.name.c_str(), op.mode & 07777);
        else if (S_ISLNK(op.mode)) rc = symlinkat(op.target.c_str(), p, op.name.c_str());
        else if (S_ISFIFO(op.mode)) rc = mknodat(p, op.name.c_str(), op.mode, 0);
        else {
          int fd = openat(p, op.name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, op.mode & 07777);
          rc = fd < 0 ? -1 : close(fd);
        }
        if (rc != 0) return errno;
        int fd = openat(p, op.name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) return errno;
        fds_[next_ino] = fd;
        return 0;
      }
      case Kind::kLink:
        rc = linkat(Fd(op.a), "", Fd(op.b), op.name2.c_str(), AT_EMPTY_PATH);
        break;
      case Kind::kUnlink: rc = unlinkat(Fd(op.a), op.name.c_str(), 0); break;
      case Kind::kRmdir: rc = unlinkat(Fd(op.a), op.name.c_str(), AT_REMOVEDIR); break;
      case Kind::kRename:
        rc = renameat2(Fd(op.a), op.name.c_str(), Fd(op.b), op.name2.c_str(), op.flags);
        break;
      case Kind::kSetMode:
      case Kind::kDrop:
        break;  // not generated
    }
    return rc == 0 ? 0 : errno;
  }

  bool SameTree(const Model& model) {
    int before = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
    for (auto& [ino, n] : model.nodes()) {
      struct stat st;
      if (fstatat(Fd(ino), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
        ADD_FAILURE() << "fstat " << ino;
        continue;
      }
      EXPECT_EQ(st.st_mode & S_IFMT, n.mode & S_IFMT) << "inode " << ino;
      EXPECT_EQ(st.st_nlink, n.nlink) << "nlink of inode " << ino << " (" << model.DirPath(ino) << ")";
      for (auto& [name, child] : n.children) {
        struct stat cst, want;
        if (fstatat(Fd(ino), name.c_str(), &cst, AT_SYMLINK_NOFOLLOW) != 0 ||
            fstatat(Fd(child), "", &want, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
          ADD_FAILURE() << "stat " << model.DirPath(ino) << "/" << name << ": " << strerror(errno);
          continue;
        }
        EXPECT_EQ(cst.st_ino, want.st_ino) << model.DirPath(ino) << "/" << name;
      }
    }
    return ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count() == before;
  }

 private:
  std::map<Ino, int> fds_;
};

TEST(MetaModelOracle, MatchesHostKernel) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH";
  }
  TempDir dir("oracle");
  int root = open(dir.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(root, 0);
  HostFs host(root);
  {
    // The host filesystem must support renameat2 flags.
    int probe = renameat2(root, "x", root, "y", kRenameNoReplace | kRenameExchange);
    if (probe != 0 && errno == ENOSYS) GTEST_SKIP() << "no renameat2";
    int fd = openat(root, "p", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    close(fd);
    ASSERT_EQ(mkdirat(root, "q", 0700), 0);
    if (renameat2(root, "p", root, "q", kRenameExchange) != 0) {
      GTEST_SKIP() << "host filesystem lacks RENAME_EXCHANGE: " << strerror(errno);
    }
    ASSERT_EQ(unlinkat(root, "q", 0), 0);
    ASSERT_EQ(unlinkat(root, "p", AT_REMOVEDIR), 0);
  }
  // The root directory's link count is that of a fresh directory.
  const uint64_t seed = PickSeed();
  std::cout << "[ seed     ] TEMPFS_TEST_SEED=" << seed << std::endl;
  SCOPED_TRACE("TEMPFS_TEST_SEED=" + std::to_string(seed));
  Rng rng(seed);
  Model model;
  Generator gen(rng, /*with_setmode=*/false, /*with_drop=*/false);
  Ino next = kRootIno + 1;
  int mismatches = 0;
  for (int i = 0; i < kOps; i++) {
    Op op = gen.Next(model);
    std::set<int> want = model.Expect(op);
    int got = host.Run(op, next);
    bool ok = want.empty() ? got == 0 : want.count(got) != 0;
    if (!ok) {
      ADD_FAILURE() << "op #" << i << " " << Describe(op) << ": model says " << SetString(want)
                    << ", kernel says " << ErrName(got);
      if (++mismatches >= 10 || got == 0) FAIL() << "model does not match the kernel";
      continue;
    }
    if (got == 0) {
      model.Apply(op, next);
      if (op.kind == Kind::kCreate) next++;
    }
    if (i % 500 == 0) {
      ASSERT_TRUE(host.SameTree(model)) << "after op #" << i;
    }
  }
  ASSERT_TRUE(host.SameTree(model));
}

}  // namespace
}  // namespace tempfs
