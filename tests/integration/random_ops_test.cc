// Randomized differential test: the same random sequence of namespace and data
// operations runs on a tempfs mount and on a plain directory; results (errno),
// the touched entries and their contents must match after every step, and the
// whole tree must match at the end and again after a clean unmount/remount.
//
// The seed is printed; rerun a failure with TEMPFS_TEST_SEED=<seed>
// (TEMPFS_TEST_STEPS overrides the step count).
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "support/mount_fixture.h"

namespace tempfs::testing {
namespace {

constexpr int kDefaultSteps = 3000;
constexpr int kStepsAfterRemount = 500;
// Keep the test bounded (< 30 s) even on a slow filesystem.
constexpr std::chrono::seconds kPhase1Budget{18};
constexpr std::chrono::seconds kPhase2Budget{5};


uint64_t SeedFromEnvOrTime() {
  if (const char* env = std::getenv("TEMPFS_TEST_SEED"); env != nullptr && *env != '\0') {
    return std::strtoull(env, nullptr, 0);
  }
  return static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) ^
         (static_cast<uint64_t>(::getpid()) << 32);
}

int StepsFromEnv() {
  if (const char* env = std::getenv("TEMPFS_TEST_STEPS"); env != nullptr && *env != '\0') {
    return std::max(1, std::atoi(env));
  }
  return kDefaultSteps;
}

// A random operation, applied identically to both trees.
struct Op {
  enum Kind { kCreate, kWrite, kTruncate, kRename, kUnlink, kLink, kMkdir, kRmdir, kRead };
  Kind kind = kCreate;
  std::string a, b;
  int flags = 0;
  int64_t off = 0;
  int64_t len = 0;
  std::string data;

  std::string Describe() const {
    switch (kind) {
      case kCreate: {
        std::string f = "O_CREAT|O_WRONLY";
        if (flags & O_EXCL) f += "|O_EXCL";
        if (flags & O_TRUNC) f += "|O_TRUNC";
        return "create(" + a + ", " + f + ")";
      }
      case kWrite:
        return "pwrite(" + a + ", off=" + std::to_string(off) + ", len=" + std::to_string(data.size()) + ")";
      case kTruncate:
        return "truncate(" + a + ", " + std::to_string(len) + ")";
      case kRename:
        return "rename(" + a + ", " + b + ")";
      case kUnlink:
        return "unlink(" + a + ")";
      case kLink:
        return "link(" + a + ", " + b + ")";
      case kMkdir:
        return "mkdir(" + a + ")";
      case kRmdir:
        return "rmdir(" + a + ")";
      case kRead:
        return "read(" + a + ")";
    }
    return "?";
  }
};

// Mostly small offsets/sizes (dense overlapping writes), sometimes far out
// (sparse regions, chunk boundaries).
int64_t RandomExtent(std::mt19937_64& rng) {
  int r = static_cast<int>(rng() % 100);
  if (r < 75) return static_cast<int64_t>(rng() % (64 * 1024));
  if (r < 95) return static_cast<int64_t>(rng() % (512 * 1024));
  return static_cast<int64_t>(rng() % (4 * 1024 * 1024));
}

Op Generate(std::mt19937_64& rng, const std::vector<std::string>& paths) {
  auto pick = [&] { return paths[rng() % paths.size()]; };
  Op op;
  int r = static_cast<int>(rng() % 100);
  if (r < 14) {
    op.kind = Op::kCreate;
    op.a = pick();
    op.flags = O_CREAT | O_WRONLY | ((rng() % 3 == 0) ? O_EXCL : 0) | ((rng() % 4 == 0) ? O_TRUNC : 0);
  } else if (r < 38) {
    op.kind = Op::kWrite;
    op.a = pick();
    op.off = RandomExtent(rng);
    size_t len = 1 + static_cast<size_t>(rng() % (rng() % 8 == 0 ? 128 * 1024 : 8 * 1024));
    op.data.resize(len);
    for (auto& c : op.data) c = static_cast<char>(rng());
  } else if (r < 46) {
    op.kind = Op::kTruncate;
    op.a = pick();
    op.len = RandomExtent(rng);
  } else if (r < 60) {
    op.kind = Op::kRename;
    op.a = pick();
    op.b = pick();
  } else if (r < 68) {
    op.kind = Op::kUnlink;
    op.a = pick();
  } else if (r < 76) {
    op.kind = Op::kLink;
    op.a = pick();
    op.b = pick();
  } else if (r < 84) {
    op.kind = Op::kMkdir;
    op.a = pick();
  } else if (r < 90) {
    op.kind = Op::kRmdir;
    op.a = pick();
  } else {
    op.kind = Op::kRead;
    op.a = pick();
  }
  return op;
}


// Applies op below root; returns the result text (return value or errno).
std::string Apply(const std::string& root, const Op& op) {
  std::string a = root + "/" + op.a;
  std::string b = root + "/" + op.b;
  switch (op.kind) {
    case Op::kCreate: {
      int fd = ::open(a.c_str(), op.flags, 0644);
      std::string s = fd >= 0 ? "ok" : ErrName(errno);
      if (fd >= 0) ::close(fd);
      return s;
    }
    case Op::kWrite: {
      int fd = ::open(a.c_str(), O_WRONLY);
      if (fd < 0) return "open " + ErrName(errno);
      std::string s = RetStr(::pwrite(fd, op.data.data(), op.data.size(), op.off));
      ::close(fd);
      return s;
    }
    case Op::kTruncate:
      return RetStr(::truncate(a.c_str(), op.len));
    case Op::kRename:
      return RetStr(::rename(a.c_str(), b.c_str()));
    case Op::kUnlink:
      return RetStr(::unlink(a.c_str()));
    case Op::kLink:
      return RetStr(::link(a.c_str(), b.c_str()));
    case Op::kMkdir:
      return RetStr(::mkdir(a.c_str(), 0755));
    case Op::kRmdir:
      return RetStr(::rmdir(a.c_str()));
    case Op::kRead: {
      std::string content;
      if (!ReadWholeFile(a, &content)) return ErrName(errno);
      return "read " + std::to_string(content.size());
    }
  }
  return "?";
}

// What one entry looks like: metadata text plus contents for regular files.
struct Entry {
  std::string meta;
  std::string content;
};

Entry Observe(const std::string& path) {
  Entry e;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    e.meta = ErrName(errno);
    return e;
  }
  if (S_ISDIR(st.st_mode)) {
    e.meta = "dir nlink=" + std::to_string(st.st_nlink);
  } else if (S_ISREG(st.st_mode)) {
    e.meta = "reg size=" + std::to_string(st.st_size) + " nlink=" + std::to_string(st.st_nlink);
    if (!ReadWholeFile(path, &e.content)) e.meta += " read:" + ErrName(errno);
  } else {
    e.meta = "other mode=" + std::to_string(st.st_mode);
  }
  return e;
}

// Empty if equal, else a description of the first difference.
std::string DiffEntries(const Entry& t, const Entry& p) {
  if (t.meta != p.meta) return "tempfs: " + t.meta + "\n  plain:  " + p.meta;
  if (t.content == p.content) return "";
  size_t i = 0;
  while (i < t.content.size() && i < p.content.size() && t.content[i] == p.content[i]) ++i;
  return "contents differ (" + p.meta + "), first at offset " + std::to_string(i) + " of tempfs len " +
         std::to_string(t.content.size()) + " / plain len " + std::to_string(p.content.size());
}

void Walk(const std::string& root, const std::string& rel, std::map<std::string, Entry>* out) {
  std::string dir = rel.empty() ? root : root + "/" + rel;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    (*out)[rel + "/"] = Entry{"opendir " + ErrName(errno), ""};
    return;
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
  }
  ::closedir(d);
  for (const auto& n : names) {
    std::string child = rel.empty() ? n : rel + "/" + n;
    if (out->count(child)) {
      (*out)[child + " (duplicate readdir entry)"] = Entry{"dup", ""};
      continue;
    }
    Entry e = Observe(root + "/" + child);
    bool is_dir = e.meta.rfind("dir ", 0) == 0;
    (*out)[child] = std::move(e);
    if (is_dir) Walk(root, child, out);
  }
}

// Run against both data paths: kernel passthrough (default where libfuse
// supports it) and the userspace fallback.
class RandomOpsTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    TEMPFS_SKIP_IF_NO_FUSE();
    tmp_ = std::make_unique<TempDir>("random");
    std::vector<std::string> args;
    if (GetParam()) args.push_back("--no-passthrough");
    mount_ = TempfsMount::Start(tmp_->path(), args);
    ASSERT_NE(mount_, nullptr);
    plain_ = tmp_->path() + "/plain";
    ASSERT_EQ(::mkdir(plain_.c_str(), 0755), 0);
  }

  void TearDown() override {
    if (HasFailure() && mount_ != nullptr) {
      std::cout << "daemon " << (mount_->DaemonAlive() ? "alive" : "NOT RUNNING") << "\n"
                << mount_->LogTail() << std::endl;
    }
    mount_.reset();
    tmp_.reset();
  }

  // Runs `steps` random ops; stops at the first divergence (everything after
  // it would be noise). Returns false if it diverged.
  bool RunSteps(std::mt19937_64& rng, int steps, std::chrono::seconds budget, const std::string& phase,
                uint64_t seed) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) {
      if (std::chrono::steady_clock::now() - start > budget) {
        std::cout << "[ random_ops ] " << phase << ": time budget reached after " << i << " steps\n";
        break;
      }
      Op op = Generate(rng, paths_);
      std::string rt = Apply(mount_->mnt(), op);
      std::string rp = Apply(plain_, op);
      std::string where =
          phase + " step " + std::to_string(i) + " " + op.Describe() + " (seed " + std::to_string(seed) + ")";
      history_.push_back(where + " -> " + rp);
      if (rt != rp) {
        ADD_FAILURE() << where << ": result differs\n  tempfs: " << rt << "\n  plain:  " << rp
                      << RecentHistory();
        return false;
      }
      for (const std::string* rel : {&op.a, &op.b}) {
        if (rel->empty()) continue;
        std::string diff = DiffEntries(Observe(mount_->mnt() + "/" + *rel), Observe(plain_ + "/" + *rel));
        if (!diff.empty()) {
          ADD_FAILURE() << where << ": state of " << *rel << " differs afterwards\n  " << diff
                        << RecentHistory();
          return false;
        }
      }
    }
    return true;
  }

  std::string RecentHistory() const {
    std::string s;
    if (!mount_->DaemonAlive()) s += "\n  (the tempfs daemon is no longer running: it crashed or was killed)";
    s += "\n  recent steps (plain results):";
    size_t from = history_.size() > 12 ? history_.size() - 12 : 0;
    for (size_t i = from; i < history_.size(); ++i) s += "\n    " + history_[i];
    return s;
  }

  // Compares the whole trees: names, types, sizes, link counts, contents.
  bool CompareTrees(const std::string& when) {
    std::map<std::string, Entry> t, p;
    Walk(mount_->mnt(), "", &t);
    Walk(plain_, "", &p);
    if (!mount_->DaemonAlive()) {
      ADD_FAILURE() << when << ": the tempfs daemon is no longer running (crashed or killed)";
      return false;
    }
    int reported = 0;
    for (const auto& [name, pe] : p) {
      auto it = t.find(name);
      std::string diff =
          it == t.end() ? "missing on tempfs (plain: " + pe.meta + ")" : DiffEntries(it->second, pe);
      if (!diff.empty() && reported++ < 10) ADD_FAILURE() << when << ": " << name << ": " << diff;
    }
    for (const auto& [name, te] : t) {
      if (!p.count(name) && reported++ < 10)
        ADD_FAILURE() << when << ": " << name << " only on tempfs: " << te.meta;
    }
    std::cout << "[ random_ops ] " << when << ": " << p.size() << " entries compared, " << reported
              << " differences\n";
    return reported == 0;
  }

  std::unique_ptr<TempDir> tmp_;
  std::unique_ptr<TempfsMount> mount_;
  std::string plain_;
  std::vector<std::string> paths_;
  std::vector<std::string> history_;
};

TEST_P(RandomOpsTest, MatchesPlainDirectoryAndSurvivesRemount) {
  const uint64_t seed = SeedFromEnvOrTime();
  std::cout << "[ random_ops ] seed=" << seed << " (reproduce with TEMPFS_TEST_SEED=" << seed << ")"
            << std::endl;
  SCOPED_TRACE("TEMPFS_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);

  // A few names in 2-3 directories; d1/d2 themselves can be renamed or
  // removed, and names can become directories, so paths come and go.
  for (const std::string dir : {"", "d1/", "d2/"}) {
    for (const std::string name : {"a", "b", "c", "d1", "d2"}) paths_.push_back(dir + name);
  }
  for (const char* d : {"d1", "d2"}) {
    ASSERT_EQ(::mkdir((mount_->mnt() + "/" + d).c_str(), 0755), 0) << strerror(errno);
    ASSERT_EQ(::mkdir((plain_ + "/" + d).c_str(), 0755), 0);
  }

  const int steps = StepsFromEnv();
  if (!RunSteps(rng, steps, kPhase1Budget, "phase 1", seed)) return;
  if (!CompareTrees("after random ops")) return;

  CommandResult u = mount_->Unmount();
  ASSERT_EQ(u.exit_code, 0) << "tempfs umount: " << u.err;
  ASSERT_FALSE(IsMountPoint(mount_->mnt()));
  ASSERT_TRUE(mount_->Remount());
  if (!CompareTrees("after clean remount")) return;

  // The replayed state must also behave like the reference when changed.
  if (!RunSteps(rng, std::min(steps, kStepsAfterRemount), kPhase2Budget, "phase 2 (after remount)", seed))
    return;
  if (!CompareTrees("after phase 2")) return;
  u = mount_->Unmount();
  ASSERT_EQ(u.exit_code, 0) << "tempfs umount: " << u.err;
  ASSERT_TRUE(mount_->Remount());
  CompareTrees("after second remount");
}

INSTANTIATE_TEST_SUITE_P(, RandomOpsTest, ::testing::Bool(), [](const ::testing::TestParamInfo<bool>& info) {
  return info.param ? "no_passthrough" : "default";
});

}  // namespace
}  // namespace tempfs::testing
