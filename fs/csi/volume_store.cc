#include "csi/volume_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>

#include "common/log.h"
#include "csi/file_util.h"
#include "csi/mounts.h"
#include "vfs/quota.h"

namespace tempfs::csi {
namespace {

constexpr char kStateDir[] = ".tempfs-csi";
constexpr char kById[] = "_id";

std::string Get(const std::map<std::string, std::string>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? "" : it->second;
}

// Serializes changes to the volumes between processes on this node (the CSI
// plugin and tempfs-admin gc): an flock on MNT/.tempfs-csi/lock, released
// when the guard goes. Best effort: without the lock file (a dead mount) the
// operation goes on unlocked, and fails or succeeds on its own.
class StateLock {
 public:
  explicit StateLock(const std::string& mnt) {
    const std::string dir = mnt + "/" + kStateDir;
    if (!MakeDirs(dir, 0755).ok()) return;
    fd_ = open((dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ >= 0) {
      while (flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
  }
  ~StateLock() {
    if (fd_ >= 0) close(fd_);
  }
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace

std::string VolumeKey::RelPath() const { return by_id ? ns + "/" + kById + "/" + name : ns + "/" + name; }

Result<VolumeSpec> ResolveVolume(const std::string& volume_id, const std::map<std::string, std::string>& context) {
  VolumeSpec spec;
  auto ns = context.find(kCtxPodNamespace);
  if (ns != context.end()) {
    TEMPFS_RETURN_IF_ERROR(CheckDnsLabel(std::string("volume context ") + kCtxPodNamespace, ns->second));
    spec.key.ns = ns->second;
  } else {
    spec.key.ns = kNoNamespace;
  }
  auto name = context.find(kAttrVolume);
  if (name != context.end()) {
    TEMPFS_RETURN_IF_ERROR(CheckDnsLabel("volume attribute \"volume\"", name->second));
    spec.key.name = name->second;
  } else {
    TEMPFS_RETURN_IF_ERROR(CheckVolumeId(volume_id));
    spec.key.name = volume_id;
    spec.key.by_id = true;
  }
  // Only for tempfs-admin's view of who uses a volume; a name that is not a
  // plain Kubernetes name is left out rather than written into the marker.
  auto pod = context.find(kCtxPodName);
  if (ns != context.end() && pod != context.end() && !pod->second.empty() && pod->second.size() <= 253 &&
      pod->second.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") == std::string::npos) {
    spec.pod = ns->second + "/" + pod->second;
  }
  auto cap = context.find(kAttrCapacity);
  if (cap != context.end()) {
    auto bytes = ParseQuantity(cap->second);
    if (!bytes.ok()) return bytes.status();
    spec.capacity = *bytes;
  }
  const bool ephemeral = Get(context, kCtxEphemeral) == "true";
  spec.retention.kind = ephemeral ? Retention::Kind::kDelete : Retention::Kind::kKeep;
  auto ret = context.find(kAttrRetention);
  if (ret != context.end()) {
    auto r = ParseRetention(ret->second);
    if (!r.ok()) return r.status();
    spec.retention = *r;
  }
  return spec;
}

VolumeStore::VolumeStore(std::string mnt, std::string node_id) : mnt_(std::move(mnt)), node_id_(std::move(node_id)) {}

Status VolumeStore::CheckServing() const { return CheckTempfsServing(mnt_); }

std::string VolumeStore::DataDir(const VolumeKey& key) const { return mnt_ + "/volumes/" + key.RelPath(); }

std::string VolumeStore::StateDir(const VolumeKey& key) const { return mnt_ + "/" + kStateDir + "/" + key.RelPath(); }

std::string VolumeStore::MarkerPath(const VolumeKey& key, const std::string& target) const {
  return StateDir(key) + "/pubs/" + node_id_ + "~" + PathHash(target);
}

Status VolumeStore::Acquire(const VolumeSpec& spec, const std::string& target) {
  StateLock lock(mnt_);
  const std::string data = DataDir(spec.key);
  TEMPFS_RETURN_IF_ERROR(MakeDirs(data.substr(0, data.rfind('/')), 0755));
  bool created = false;
  TEMPFS_RETURN_IF_ERROR(MakeDir(data, 0777, &created));
  // Set explicitly: the umask must not narrow it. An existing volume keeps
  // the mode and owner its pods (or kubelet's fsGroup handling) gave it.
  if (created && chmod(data.c_str(), 0777) != 0) return Status::FromErrno("chmod " + data);
  TEMPFS_RETURN_IF_ERROR(SetCapacity(data, spec.capacity));

  const std::string state = StateDir(spec.key);
  TEMPFS_RETURN_IF_ERROR(MakeDirs(state + "/pubs", 0755));
  std::map<std::string, std::string> attrs = {
      {"capacity", std::to_string(spec.capacity)},
      {"retention", FormatRetention(spec.retention)},
  };
  TEMPFS_RETURN_IF_ERROR(WriteFileAtomic(state + "/attrs", FormatKeyValues(attrs), 0644));
  if (unlink((state + "/expires").c_str()) != 0 && errno != ENOENT) {
    return Status::FromErrno("cancelling the expiry of " + spec.key.RelPath());
  }
  std::map<std::string, std::string> marker = {{"target", target}};
  if (!spec.pod.empty()) marker["pod"] = spec.pod;
  return WriteFileAtomic(MarkerPath(spec.key, target), FormatKeyValues(marker), 0644);
}

Status VolumeStore::Release(const VolumeKey& key, const std::string& target, const Retention& fallback) {
  StateLock lock(mnt_);
  const std::string marker = MarkerPath(key, target);
  if (unlink(marker.c_str()) != 0 && errno != ENOENT) return Status::FromErrno("unlink " + marker);
  const std::string state = StateDir(key);
  auto pubs = ListDir(state + "/pubs");
  if (pubs.ok() && !pubs->empty()) return Status::Ok();  // still in use
  if (!pubs.ok() && pubs.err() != ENOENT) return pubs.status();

  Retention retention = fallback;
  auto attrs = ReadSmallFile(state + "/attrs");
  if (attrs.ok()) {
    auto parsed = ParseRetention(Get(ParseKeyValues(*attrs), "retention"));
    if (parsed.ok()) retention = *parsed;
  }
  switch (retention.kind) {
    case Retention::Kind::kDelete:
      TLOG_INFO("csi: volume %s: last publication gone, deleting its data", key.RelPath().c_str());
      return Delete(key);
    case Retention::Kind::kKeep:
      return Status::Ok();
    case Retention::Kind::kKeepFor: {
      int64_t until = static_cast<int64_t>(time(nullptr)) + retention.seconds;
      TEMPFS_RETURN_IF_ERROR(MakeDirs(state, 0755));
      return WriteFileAtomic(state + "/expires", std::to_string(until) + "\n", 0644);
    }
  }
  return Status::Ok();
}

Status VolumeStore::SetCapacity(const std::string& data, uint64_t capacity) {
  // The daemon enforces it (ENOSPC in the pods); only CAP_SYS_ADMIN may
  // touch trusted.* xattrs, so pods cannot lift it.
  if (capacity == 0) {
    if (removexattr(data.c_str(), kCapacityXattr) != 0 && errno != ENODATA) {
      return Status::FromErrno("lifting the capacity of " + data);
    }
    return Status::Ok();
  }
  const std::string value = std::to_string(capacity);
  if (setxattr(data.c_str(), kCapacityXattr, value.data(), value.size(), 0) != 0) {
    return Status::FromErrno("setting the capacity of " + data);
  }
  return Status::Ok();
}

uint64_t VolumeStore::Capacity(const VolumeKey& key) const {
  auto attrs = ReadSmallFile(StateDir(key) + "/attrs");
  if (!attrs.ok()) return 0;
  return strtoull(Get(ParseKeyValues(*attrs), "capacity").c_str(), nullptr, 10);
}

Status VolumeStore::Delete(const VolumeKey& key) {
  TEMPFS_RETURN_IF_ERROR(RemoveTree(DataDir(key)));
  return RemoveTree(StateDir(key));
}

bool VolumeStore::CollectIfExpired(const VolumeKey& key, int64_t now_unix) {
  const std::string state = StateDir(key);
  auto expires = ReadSmallFile(state + "/expires");
  if (!expires.ok()) return false;
  if (strtoll(expires->c_str(), nullptr, 10) > now_unix) return false;
  auto pubs = ListDir(state + "/pubs");
  if (pubs.ok() && !pubs->empty()) return false;
  TLOG_INFO("csi: volume %s: kept time is up, deleting its data", key.RelPath().c_str());
  Status st = Delete(key);
  if (!st.ok()) TLOG_WARN("csi: deleting expired volume %s: %s", key.RelPath().c_str(), st.ToString().c_str());
  return st.ok();
}

std::vector<std::string> VolumeStore::CollectExpired(int64_t now_unix) {
  StateLock lock(mnt_);
  std::vector<std::string> deleted;
  auto collect = [&](const VolumeKey& key) {
    if (CollectIfExpired(key, now_unix)) deleted.push_back(key.RelPath());
  };
  const std::string root = mnt_ + "/" + kStateDir;
  auto namespaces = ListDir(root);
  if (!namespaces.ok()) return deleted;
  for (const std::string& ns : *namespaces) {
    auto names = ListDir(root + "/" + ns);
    if (!names.ok()) continue;
    for (const std::string& name : *names) {
      if (name != kById) {
        collect(VolumeKey{ns, name, false});
        continue;
      }
      auto ids = ListDir(root + "/" + ns + "/" + kById);
      if (!ids.ok()) continue;
      for (const std::string& id : *ids) collect(VolumeKey{ns, id, true});
    }
  }
  return deleted;
}

}  // namespace tempfs::csi
