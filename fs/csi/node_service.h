// The CSI Node service of tempfs: publishing a volume bind-mounts its
// directory in the node's tempfs mount onto the pod's target path, so the
// pods of one volume on a node share one superblock (files, MAP_SHARED
// memory and descriptor passing over Unix sockets work between them), and a
// pod sees its volume and nothing else.
//
// Publish and unpublish are idempotent, as the spec asks. Targets lie beneath
// kubelet's directory and are reached without following a symlink (see
// target_dir.h); anything else is INVALID_ARGUMENT. Unpublish undoes only
// what publish did: it acts only on a target with a publication record, and
// there detaches only mounts that are this volume's bind mounts of the
// node's tempfs mount, and removes the target only if publish created it. A
// path never published, or already unpublished, is OK and left as it is.
// Unpublish works on a dead mount (daemon gone): the target is unmounted and
// removed, and the volume's bookkeeping in the tempfs mount waits for
// Maintain().
//
// Maintain(), run periodically: when the tempfs mount serves again after a
// daemon restart, re-binds the volume on every target whose mount is dead
// (on top of it: pods whose volumeMount has mountPropagation HostToContainer
// see their volume again without a restart), finishes deferred releases, and
// deletes volumes whose keep time is up.
//
// Thread-safe: publish, unpublish and maintenance are serialized by one
// mutex; stats walk outside it.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "csi/csi.grpc.pb.h"
#include "csi/publications.h"
#include "csi/target_dir.h"
#include "csi/volume_store.h"
#include "daemon/mount_table.h"

namespace tempfs::csi {

struct NodeOptions {
  std::string node_id;
  int64_t max_volumes_per_node = 0;  // 0: no limit
  std::string kubelet_dir = "/var/lib/kubelet";  // targets must lie beneath it
};

class NodeService final : public ::csi::v1::Node::Service {
 public:
  NodeService(NodeOptions options, VolumeStore* store, PublicationTable* pubs)
      : options_(std::move(options)), kubelet_(options_.kubelet_dir), store_(store), pubs_(pubs) {}

  grpc::Status NodePublishVolume(grpc::ServerContext* ctx, const ::csi::v1::NodePublishVolumeRequest* req,
                                 ::csi::v1::NodePublishVolumeResponse* resp) override;
  grpc::Status NodeUnpublishVolume(grpc::ServerContext* ctx, const ::csi::v1::NodeUnpublishVolumeRequest* req,
                                   ::csi::v1::NodeUnpublishVolumeResponse* resp) override;
  grpc::Status NodeGetVolumeStats(grpc::ServerContext* ctx, const ::csi::v1::NodeGetVolumeStatsRequest* req,
                                  ::csi::v1::NodeGetVolumeStatsResponse* resp) override;
  grpc::Status NodeGetCapabilities(grpc::ServerContext* ctx, const ::csi::v1::NodeGetCapabilitiesRequest* req,
                                   ::csi::v1::NodeGetCapabilitiesResponse* resp) override;
  grpc::Status NodeGetInfo(grpc::ServerContext* ctx, const ::csi::v1::NodeGetInfoRequest* req,
                           ::csi::v1::NodeGetInfoResponse* resp) override;

  // One round of maintenance (see above). Errors are logged.
  void Maintain();

 private:
  Status Publish(const ::csi::v1::NodePublishVolumeRequest& req);
  Status Unpublish(const ::csi::v1::NodeUnpublishVolumeRequest& req);
  Status Stats(const ::csi::v1::NodeGetVolumeStatsRequest& req, ::csi::v1::NodeGetVolumeStatsResponse* resp);
  // Drops the record's publication from the volume; keeps the record, marked
  // released, when the mount does not serve.
  Status Release(Publication p);
  // Detaches this volume's mounts stacked on the publication's target and
  // removes the target if publish created it. A mount that is not ours on
  // top is left alone: EBUSY.
  Status TakeDown(const Publication& p);
  // Whether `m`, the mount whose root is open as `fd`, is a bind mount of
  // volume `key` from the node's tempfs mount (or from an earlier daemon's
  // mount of the same store, dead since).
  bool IsVolumeMount(const MountEntry& m, int fd, const VolumeKey& key) const;

  const NodeOptions options_;
  const KubeletDir kubelet_;
  VolumeStore* const store_;
  PublicationTable* const pubs_;
  std::mutex mu_;  // serializes publish, unpublish, maintenance
};

}  // namespace tempfs::csi
