// The CSI Identity service: the plugin's name and version, its capabilities
// (a node-only plugin whose volumes live on one node, so it reports
// VOLUME_ACCESSIBILITY_CONSTRAINTS with the topology NodeGetInfo gives), and
// readiness: Probe answers ready=false while the node's tempfs mount does not
// serve. Thread-safe.
#pragma once

#include "csi/csi.grpc.pb.h"
#include "csi/volume_store.h"

namespace tempfs::csi {

class IdentityService final : public ::csi::v1::Identity::Service {
 public:
  explicit IdentityService(const VolumeStore* store) : store_(store) {}

  grpc::Status GetPluginInfo(grpc::ServerContext* ctx, const ::csi::v1::GetPluginInfoRequest* req,
                             ::csi::v1::GetPluginInfoResponse* resp) override;
  grpc::Status GetPluginCapabilities(grpc::ServerContext* ctx, const ::csi::v1::GetPluginCapabilitiesRequest* req,
                                     ::csi::v1::GetPluginCapabilitiesResponse* resp) override;
  grpc::Status Probe(grpc::ServerContext* ctx, const ::csi::v1::ProbeRequest* req,
                     ::csi::v1::ProbeResponse* resp) override;

 private:
  const VolumeStore* store_;
};

}  // namespace tempfs::csi
