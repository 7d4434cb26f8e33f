// tempfs-mdbench: small-file (metadata-heavy) micro-benchmark.
//
// Usage: tempfs-mdbench DIR [--files N] [--size BYTES] [--phases LIST]
//
// Works in a fresh subdirectory DIR/mdbench.PID (removed at the end) and runs
// the phases of LIST (comma-separated, in this order; default
// "create,stat,restat,read,stat_cold,unlink"), each over all N files (default
// 10000, each BYTES = 4096 bytes):
//   create     open(O_CREAT|O_EXCL|O_WRONLY) + write BYTES + close
//   stat       stat() each file, right after the writes (dentries cached;
//              on FUSE the writes invalidated the attributes: one GETATTR each)
//   restat     stat() each file again (everything cached)
//   stat_cold  sync(), drop dentries and inodes (echo 2 > drop_caches, root
//              only; evicting an inode also drops its cached pages, so this
//              comes after "read"), then stat() each file: on FUSE every stat
//              becomes a LOOKUP round trip to the daemon
//   read       open(O_RDONLY) + read BYTES (content checked) + close
//   unlink     unlink() each file
// "create" always runs first and "unlink" last (the files are needed, and
// the directory is left empty); they are reported only when listed.
//
// Output: one line per phase on stdout, machine-readable (key=value):
//   mdbench phase=create files=10000 bytes=4096 seconds=0.123456 ops_per_sec=81000.0
// or, for a phase that could not run:
//   mdbench phase=stat_cold skipped=REASON
// Exit status: 0 on success, 1 on any I/O error (message on stderr).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "tempfs-mdbench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: tempfs-mdbench DIR [--files N] [--size BYTES] "
               "[--phases create,stat,restat,read,stat_cold,unlink]\n");
  std::exit(2);
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool Has(const std::vector<std::string>& v, const std::string& x) {
  for (auto& e : v) if (e == x) return true;
  return false;
}

bool DropDentries(std::string* why) {
  sync();
  int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    *why = std::string("cannot_open_drop_caches_") + (errno == EACCES ? "not_root" : "error");
    return false;
  }
  bool ok = write(fd, "2\n", 2) == 2;
  close(fd);
  if (!ok) *why = "drop_caches_write_failed";
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Usage();
  std::string dir = argv[1];
  long files = 10000;
  long size = 4096;
  std::string phases_arg = "create,stat,restat,read,stat_cold,unlink";
  for (int i = 2; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) Usage();
    if (a == "--files") files = std::atol(argv[++i]);
    else if (a == "--size") size = std::atol(argv[++i]);
    else if (a == "--phases") phases_arg = argv[++i];
    else Usage();
  }
  if (files <= 0 || size < 0) Usage();
  std::vector<std::string> phases = Split(phases_arg);
  for (auto& p : phases) {
    if (p != "create" && p != "stat" && p != "restat" && p != "stat_cold" && p != "read" && p != "unlink") Usage();
  }

  std::string work = dir + "/mdbench." + std::to_string(getpid());
  if (mkdir(work.c_str(), 0755) != 0) Die("mkdir " + work);
  std::vector<std::string> names;
  names.reserve(files);
  for (long i = 0; i < files; i++) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "/f%07ld", i);
    names.push_back(work + buf);
  }
  std::vector<char> data(static_cast<size_t>(size));
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>('a' + i % 23);
  std::vector<char> rbuf(static_cast<size_t>(size) + 1);

  using Clock = std::chrono::steady_clock;
  auto report = [&](const std::string& phase, Clock::time_point t0) {
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("mdbench phase=%s files=%ld bytes=%ld seconds=%.6f ops_per_sec=%.1f\n", phase.c_str(), files,
                size, s, s > 0 ? static_cast<double>(files) / s : 0.0);
    std::fflush(stdout);
  };

  // The files must exist for any phase but "create"; they are always removed.
  std::vector<std::string> run;
  run.push_back("create");
  for (auto& p : phases) if (p != "create" && p != "unlink") run.push_back(p);
  run.push_back("unlink");

  for (auto& p : run) {
    bool wanted = Has(phases, p);
    if (p == "stat_cold") {
      std::string why;
      if (!DropDentries(&why)) {
        std::printf("mdbench phase=stat_cold skipped=%s\n", why.c_str());
        continue;
      }
    }
    auto t0 = Clock::now();
    if (p == "create") {
      for (auto& n : names) {
        int fd = open(n.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0) Die("create " + n);
        if (size > 0 && write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) Die("write " + n);
        if (close(fd) != 0) Die("close " + n);
      }
    } else if (p == "stat" || p == "restat" || p == "stat_cold") {
      struct stat st;
      for (auto& n : names) {
        if (stat(n.c_str(), &st) != 0) Die("stat " + n);
        if (st.st_size != size) {
          errno = EIO;
          Die("stat " + n + ": size " + std::to_string(st.st_size));
        }
      }
    } else if (p == "read") {
      for (auto& n : names) {
        int fd = open(n.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) Die("open " + n);
        ssize_t got = read(fd, rbuf.data(), rbuf.size());
        if (got != size || std::memcmp(rbuf.data(), data.data(), data.size()) != 0) {
          if (got >= 0) errno = EIO;
          Die("read " + n);
        }
        if (close(fd) != 0) Die("close " + n);
      }
    } else if (p == "unlink") {
      for (auto& n : names) {
        if (unlink(n.c_str()) != 0) Die("unlink " + n);
      }
    }
    if (wanted) report(p, t0);
  }
  if (rmdir(work.c_str()) != 0) Die("rmdir " + work);
  return 0;
}
