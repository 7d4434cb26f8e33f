#include "meta/namespace_identity.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <sstream>

#include "store/env.h"

namespace tempfs {
namespace {

bool IsHexId(const std::string& s) {
  return !s.empty() && s.size() <= 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

std::string StoreIdentityPath(const std::string& store_dir) { return store_dir + "/namespace.id"; }

std::string NewRandomId() {
  unsigned char b[16];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = getrandom(b + got, sizeof b - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) abort();  // the kernel's generator does not fail once booted
    got += static_cast<size_t>(n);
  }
  char hex[33];
  for (size_t i = 0; i < sizeof b; i++) snprintf(hex + 2 * i, 3, "%02x", b[i]);
  return std::string(hex, 32);
}

Result<std::optional<StoreIdentity>> ReadStoreIdentity(const std::string& store_dir) {
  std::string path = StoreIdentityPath(store_dir);
  FILE* f = fopen(path.c_str(), "re");
  if (f == nullptr) {
    if (errno == ENOENT) return std::optional<StoreIdentity>();
    return Status::FromErrno(path);
  }
  std::string text;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0 && text.size() < 4096) text.append(buf, n);
  fclose(f);
  StoreIdentity id;
  std::istringstream in(text);
  std::string key, value;
  while (in >> key >> value) {
    if (key == "namespace") {
      id.ns = value;
    } else if (key == "node") {
      char* end = nullptr;
      unsigned long v = strtoul(value.c_str(), &end, 10);
      if (*end != '\0' || v > UINT32_MAX) return Status::Err(EIO, path + ": bad node number '" + value + "'");
      id.node = static_cast<uint32_t>(v);
    } else if (key == "store") {
      id.store_id = value;
    }
  }
  if (!IsHexId(id.ns) || !IsHexId(id.store_id)) {
    return Status::Err(EIO, path + " is damaged (it needs 'namespace ID' and 'store ID' lines)");
  }
  return std::optional<StoreIdentity>(std::move(id));
}

Result<std::string> SetAsideStoreData(const std::string& store_dir, const std::string& left_ns) {
  struct stat st;
  bool has_data = lstat((store_dir + "/data").c_str(), &st) == 0;
  bool has_pins = lstat((store_dir + "/pins").c_str(), &st) == 0;
  if (!has_data && !has_pins) return std::string();
  std::string top = store_dir + "/lost+found";
  if (mkdir(top.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno("mkdir " + top);
  auto made = MakeFreshDir(top + "/namespace-" + left_ns, 1000);
  if (!made.ok()) return made.status();
  const std::string& dest = *made;
  for (const char* name : {"data", "pins"}) {
    std::string from = store_dir + "/" + name;
    if (lstat(from.c_str(), &st) != 0) continue;
    if (rename(from.c_str(), (dest + "/" + name).c_str()) != 0) {
      return Status::FromErrno("move " + from + " to " + dest);
    }
  }
  SyncDir(Env::Default(), store_dir);
  return dest;
}

Status WriteStoreIdentity(const std::string& store_dir, const StoreIdentity& id) {
  std::string path = StoreIdentityPath(store_dir), tmp = path + ".tmp";
  std::string text = "namespace " + id.ns + "\nnode " + std::to_string(id.node) + "\nstore " + id.store_id + "\n";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno(tmp);
  bool ok = WriteFully(Env::Default(), fd, text, 0).ok() && fsync(fd) == 0;
  int err = errno;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) err = errno;
    unlink(tmp.c_str());
    return Status::Err(err, "write " + path);
  }
  SyncDir(Env::Default(), store_dir);
  return Status::Ok();
}

}  // namespace tempfs
