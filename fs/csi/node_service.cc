#include "csi/node_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <exception>
#include <map>

#include "common/log.h"
#include "csi/csi_status.h"
#include "csi/file_util.h"
#include "csi/mounts.h"
#include "csi/names.h"
#include "csi/target_dir.h"
#include "csi/volume_stats.h"

namespace tempfs::csi {
namespace {

namespace pb = ::csi::v1;

Status Invalid(const std::string& msg) { return Status::Err(EINVAL, msg); }

// Runs a handler body; the only place exceptions are caught.
template <typename Fn>
grpc::Status Guard(const char* rpc, Fn&& fn) {
  try {
    Status st = fn();
    if (!st.ok()) TLOG_WARN("csi: %s: %s", rpc, st.ToString().c_str());
    return ToGrpc(st);
  } catch (const std::exception& e) {
    TLOG_ERROR("csi: %s: unexpected: %s", rpc, e.what());
    return grpc::Status(grpc::StatusCode::INTERNAL, e.what());
  }
}

bool ReadOnlyMode(const pb::VolumeCapability& cap) {
  auto mode = cap.access_mode().mode();
  return mode == pb::VolumeCapability::AccessMode::SINGLE_NODE_READER_ONLY ||
         mode == pb::VolumeCapability::AccessMode::MULTI_NODE_READER_ONLY;
}

// Stacked mounts on one target are rare (a re-bind over a dead mount); this
// bounds a loop that should end after one or two rounds.
constexpr int kMaxStackedMounts = 32;

// The topmost mount on the target open as `dir`, or nullopt when nothing is
// mounted on it.
Result<std::optional<MountEntry>> MountOnTarget(int dir, const std::string& target) {
  auto m = MountOf(dir);
  if (!m.ok()) return m.status();
  if (m->mountpoint != target) return std::optional<MountEntry>();
  return std::optional<MountEntry>(std::move(*m));
}

}  // namespace

grpc::Status NodeService::NodePublishVolume(grpc::ServerContext*, const pb::NodePublishVolumeRequest* req,
                                            pb::NodePublishVolumeResponse*) {
  return Guard("NodePublishVolume", [&] { return Publish(*req); });
}

grpc::Status NodeService::NodeUnpublishVolume(grpc::ServerContext*, const pb::NodeUnpublishVolumeRequest* req,
                                              pb::NodeUnpublishVolumeResponse*) {
  return Guard("NodeUnpublishVolume", [&] { return Unpublish(*req); });
}

grpc::Status NodeService::NodeGetVolumeStats(grpc::ServerContext*, const pb::NodeGetVolumeStatsRequest* req,
                                             pb::NodeGetVolumeStatsResponse* resp) {
  return Guard("NodeGetVolumeStats", [&] { return Stats(*req, resp); });
}

grpc::Status NodeService::NodeGetCapabilities(grpc::ServerContext*, const pb::NodeGetCapabilitiesRequest*,
                                              pb::NodeGetCapabilitiesResponse* resp) {
  resp->add_capabilities()->mutable_rpc()->set_type(pb::NodeServiceCapability::RPC::GET_VOLUME_STATS);
  return grpc::Status::OK;
}

grpc::Status NodeService::NodeGetInfo(grpc::ServerContext*, const pb::NodeGetInfoRequest*,
                                      pb::NodeGetInfoResponse* resp) {
  resp->set_node_id(options_.node_id);
  resp->set_max_volumes_per_node(options_.max_volumes_per_node);
  (*resp->mutable_accessible_topology()->mutable_segments())[kTopologyKey] = options_.node_id;
  return grpc::Status::OK;
}

Status NodeService::Publish(const pb::NodePublishVolumeRequest& req) {
  if (req.volume_id().empty()) return Invalid("volume_id is required");
  if (req.target_path().empty()) return Invalid("target_path is required");
  auto confined = kubelet_.Confine("target_path", req.target_path());
  if (!confined.ok()) return confined.status();
  const std::string& target = *confined;
  if (!req.has_volume_capability()) return Invalid("volume_capability is required");
  const pb::VolumeCapability& cap = req.volume_capability();
  if (cap.has_block()) return Invalid("block access is not supported: tempfs volumes are directories (use mount)");
  const std::map<std::string, std::string> context(req.volume_context().begin(), req.volume_context().end());
  auto spec = ResolveVolume(req.volume_id(), context);
  if (!spec.ok()) return spec.status();
  const bool readonly = req.readonly() || ReadOnlyMode(cap);

  std::lock_guard<std::mutex> lock(mu_);
  auto existing = pubs_->Find(target);
  if (!existing.ok()) return existing.status();
  const std::optional<Publication>& old = *existing;
  auto parent = kubelet_.OpenParent(target, /*create=*/true, 0750);
  if (!parent.ok()) return parent.status();
  const std::string name = BaseName(target);
  auto dir = OpenTargetAt(parent->get(), name, target);
  if (!dir.ok() && dir.err() != ENOENT) return dir.status();
  if (dir.ok()) {
    auto top = MountOnTarget(dir->get(), target);
    if (!top.ok()) return top.status();
    if (*top) {
      if (old && !old->released && old->volume_id == req.volume_id() && old->key == spec->key &&
          IsVolumeMount(**top, dir->get(), spec->key)) {
        if (old->readonly != readonly) {
          return Status::Err(
              EEXIST, target + " already publishes this volume with readonly=" + (old->readonly ? "true" : "false"));
        }
        return Status::Ok();  // the same publication again
      }
      return Status::Err(EEXIST, target + " already has a mount that is not volume " + req.volume_id());
    }
  }
  TEMPFS_RETURN_IF_ERROR(store_->CheckServing());
  // A record without a mount is an earlier attempt (or a publication whose
  // mount vanished, e.g. at a reboot). The same volume is simply published
  // again; another volume's publication is dropped first.
  if (old && !(old->key == spec->key)) TEMPFS_RETURN_IF_ERROR(store_->Release(old->key, old->target, old->retention));

  bool created = false;
  if (!dir.ok()) {
    if (mkdirat(parent->get(), name.c_str(), 0750) == 0) {
      created = true;
    } else if (errno != EEXIST) {
      return Status::FromErrno("mkdir " + target);
    }
    dir = OpenTargetAt(parent->get(), name, target);
    if (!dir.ok()) return dir.status();
  }
  Publication pub{
      target, req.volume_id(), spec->key, readonly, spec->retention, false, created || (old && old->created_target)};
  TEMPFS_RETURN_IF_ERROR(pubs_->Put(pub));
  Status st = store_->Acquire(*spec, target);
  if (st.ok()) st = BindMountAt(store_->DataDir(spec->key), dir->get(), target, readonly);
  if (!st.ok()) {
    Status undo = Release(pub);  // drops the record too, or defers like unpublish
    if (!undo.ok()) TLOG_WARN("csi: undoing a failed publish of %s: %s", target.c_str(), undo.ToString().c_str());
    if (created) unlinkat(parent->get(), name.c_str(), AT_REMOVEDIR);
    return st;
  }
  TLOG_INFO("csi: published volume %s (%s%s) at %s", spec->key.RelPath().c_str(), req.volume_id().c_str(),
            readonly ? ", read-only" : "", target.c_str());
  return Status::Ok();
}

Status NodeService::Unpublish(const pb::NodeUnpublishVolumeRequest& req) {
  if (req.volume_id().empty()) return Invalid("volume_id is required");
  if (req.target_path().empty()) return Invalid("target_path is required");
  auto confined = kubelet_.Confine("target_path", req.target_path());
  if (!confined.ok()) return confined.status();
  const std::string& target = *confined;

  std::lock_guard<std::mutex> lock(mu_);
  auto existing = pubs_->Find(target);
  if (!existing.ok()) return existing.status();
  if (!*existing) {
    // Never published here, or already unpublished: whatever is at the
    // path is not this plugin's.
    TLOG_INFO("csi: unpublish of %s: no publication there, nothing touched", target.c_str());
    return Status::Ok();
  }
  const Publication& pub = **existing;
  if (pub.volume_id != req.volume_id()) {
    // Not this volume's publication, so none to undo (as for an unknown
    // path). Taking it down would end another pod's mount and, for an
    // ephemeral volume, delete data still in use.
    TLOG_WARN("csi: unpublish of %s names volume %s, but %s is published there: nothing touched", target.c_str(),
              req.volume_id().c_str(), pub.volume_id.c_str());
    return Status::Ok();
  }
  TEMPFS_RETURN_IF_ERROR(TakeDown(pub));
  TEMPFS_RETURN_IF_ERROR(Release(pub));
  TLOG_INFO("csi: unpublished volume %s at %s", pub.key.RelPath().c_str(), target.c_str());
  return Status::Ok();
}

Status NodeService::TakeDown(const Publication& p) {
  auto parent = kubelet_.OpenParent(p.target, /*create=*/false, 0);
  if (!parent.ok()) {
    if (parent.err() == ENOENT) return Status::Ok();
    return Status::Err(parent.err(), parent.status().message() + "; the target of volume " + p.volume_id +
                                         " is not reachable safely, nothing touched");
  }
  const std::string name = BaseName(p.target);
  for (int i = 0; i < kMaxStackedMounts; i++) {
    auto dir = OpenTargetAt(parent->get(), name, p.target);
    if (!dir.ok()) {
      // Missing, or replaced by a symlink or a file: no mount of ours can
      // be there, and what is there is not ours.
      if (dir.err() != ENOENT) TLOG_WARN("csi: unpublish: %s; left alone", dir.status().message().c_str());
      return dir.err() == ENOENT || dir.err() == EINVAL ? Status::Ok() : dir.status();
    }
    auto top = MountOnTarget(dir->get(), p.target);
    if (!top.ok()) return top.status();
    if (!*top) {
      if (!p.created_target) return Status::Ok();  // kubelet's directory: kubelet removes it
      dir->Reset();
      if (unlinkat(parent->get(), name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return Status::Ok();
      // Files that are not the volume's (written while it was not mounted):
      // not ours to delete.
      TLOG_WARN("csi: unpublish: leaving the target %s: %s", p.target.c_str(), std::strerror(errno));
      return Status::Ok();
    }
    if (!IsVolumeMount(**top, dir->get(), p.key)) {
      return Status::Err(EBUSY, p.target + " has a " + (*top)->fstype + " mount of " + (*top)->source +
                                    " on top that is not volume " + p.key.RelPath() +
                                    "'s: left alone; unmount it, then unpublish again");
    }
    TEMPFS_RETURN_IF_ERROR(DetachMount(dir->get(), p.target));
  }
  return Status::Err(EBUSY, "more than " + std::to_string(kMaxStackedMounts) + " mounts stacked on " + p.target);
}

bool NodeService::IsVolumeMount(const MountEntry& m, int fd, const VolumeKey& key) const {
  if (StoreOf(m).empty()) return false;
  auto node = FindMount(store_->mnt());
  const bool have_node = node && !StoreOf(*node).empty();
  const std::string base = have_node && node->root != "/" ? node->root : "";
  if (m.root != base + "/volumes/" + key.RelPath()) return false;
  if (!have_node) return true;  // the node's mount is gone; its store's mount of this volume
  if (m.source != node->source) return false;
  // The same superblock, or an earlier daemon's mount of the store, dead
  // since (a restart under a published volume).
  return m.dev == node->dev || !Answers(fd);
}

Status NodeService::Release(Publication p) {
  Status st = store_->CheckServing();
  if (st.ok()) st = store_->Release(p.key, p.target, p.retention);
  if (st.ok()) return pubs_->Remove(p.target);
  if (p.released) return Status::Ok();
  TLOG_WARN("csi: volume %s: publication at %s stays recorded until the tempfs mount serves (%s)",
            p.key.RelPath().c_str(), p.target.c_str(), st.ToString().c_str());
  p.released = true;
  return pubs_->Put(p);
}

Status NodeService::Stats(const pb::NodeGetVolumeStatsRequest& req, pb::NodeGetVolumeStatsResponse* resp) {
  if (req.volume_id().empty()) return Invalid("volume_id is required");
  if (req.volume_path().empty()) return Invalid("volume_path is required");
  auto confined = kubelet_.Confine("volume_path", req.volume_path());
  if (!confined.ok()) return Status::Err(ENOENT, confined.status().message() + ": no volume is published there");
  const std::string& path = *confined;
  std::optional<Publication> pub;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto found = pubs_->Find(path);
    if (!found.ok()) return found.status();
    pub = *found;
  }
  if (!pub || pub->released || pub->volume_id != req.volume_id()) {
    return Status::Err(ENOENT, "volume " + req.volume_id() + " is not published at " + req.volume_path());
  }
  pb::VolumeCondition* condition = resp->mutable_volume_condition();
  Status serving = store_->CheckServing();
  if (!serving.ok()) {
    condition->set_abnormal(true);
    condition->set_message(serving.message());
    return Status::Ok();
  }
  auto usage = MeasureVolume(store_->DataDir(pub->key));
  if (!usage.ok()) {
    if (usage.err() == ENOENT) {
      return Status::Err(ENOENT, "volume " + req.volume_id() + " has no data directory (deleted?)");
    }
    condition->set_abnormal(true);
    condition->set_message(usage.status().ToString());
    return Status::Ok();
  }
  const uint64_t capacity = store_->Capacity(pub->key);
  pb::VolumeUsage* bytes = resp->add_usage();
  bytes->set_unit(pb::VolumeUsage::BYTES);
  bytes->set_used(usage->used_bytes);
  if (capacity > 0) {
    const int64_t cap = static_cast<int64_t>(std::min<uint64_t>(capacity, INT64_MAX));
    bytes->set_total(cap);
    bytes->set_available(std::clamp<int64_t>(cap - usage->used_bytes, 0, usage->fs_available_bytes));
  } else {
    bytes->set_total(usage->fs_total_bytes);
    bytes->set_available(usage->fs_available_bytes);
  }
  pb::VolumeUsage* inodes = resp->add_usage();
  inodes->set_unit(pb::VolumeUsage::INODES);
  inodes->set_used(usage->used_inodes);
  inodes->set_total(std::max(usage->fs_total_inodes, usage->used_inodes));
  inodes->set_available(usage->fs_free_inodes);
  condition->set_abnormal(false);
  condition->set_message(usage->truncated ? "serving (usage counted up to the walk's bound: a lower bound)"
                                          : "serving");
  return Status::Ok();
}

void NodeService::Maintain() {
  try {
    std::lock_guard<std::mutex> lock(mu_);
    if (!store_->CheckServing().ok()) return;
    for (const Publication& p : pubs_->List()) {
      if (p.released) {
        Status st = Release(p);
        if (st.ok())
          TLOG_INFO("csi: volume %s: dropped the publication at %s", p.key.RelPath().c_str(), p.target.c_str());
        continue;
      }
      auto parent = kubelet_.OpenParent(p.target, /*create=*/false, 0);
      if (!parent.ok()) continue;
      auto dir = OpenTargetAt(parent->get(), BaseName(p.target), p.target);
      if (!dir.ok()) continue;
      auto top = MountOnTarget(dir->get(), p.target);
      if (!top.ok() || !*top || !IsVolumeMount(**top, dir->get(), p.key) || Answers(dir->get())) continue;
      // The daemon was restarted under this publication: its mount is dead.
      const std::string data = store_->DataDir(p.key);
      Status st = Status::Ok();
      if (access(data.c_str(), F_OK) != 0) {
        st = store_->Acquire(VolumeSpec{p.key, store_->Capacity(p.key), p.retention, ""}, p.target);
      }
      if (st.ok()) st = BindMountAt(data, dir->get(), p.target, p.readonly);
      if (st.ok()) {
        TLOG_INFO("csi: volume %s: re-bound at %s after the tempfs mount came back", p.key.RelPath().c_str(),
                  p.target.c_str());
      } else {
        TLOG_WARN("csi: volume %s: re-binding at %s: %s", p.key.RelPath().c_str(), p.target.c_str(),
                  st.ToString().c_str());
      }
    }
    store_->CollectExpired(static_cast<int64_t>(time(nullptr)));
  } catch (const std::exception& e) {
    TLOG_ERROR("csi: maintenance: unexpected: %s", e.what());
  }
}

}  // namespace tempfs::csi
