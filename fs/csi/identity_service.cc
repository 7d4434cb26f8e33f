#include "csi/identity_service.h"

#include "common/log.h"
#include "csi/names.h"

namespace tempfs::csi {

namespace pb = ::csi::v1;

grpc::Status IdentityService::GetPluginInfo(grpc::ServerContext*, const pb::GetPluginInfoRequest*,
                                            pb::GetPluginInfoResponse* resp) {
  resp->set_name(kDriverName);
  resp->set_vendor_version(kVendorVersion);
  (*resp->mutable_manifest())["mount"] = store_->mnt();
  return grpc::Status::OK;
}

grpc::Status IdentityService::GetPluginCapabilities(grpc::ServerContext*, const pb::GetPluginCapabilitiesRequest*,
                                                    pb::GetPluginCapabilitiesResponse* resp) {
  resp->add_capabilities()->mutable_service()->set_type(
      pb::PluginCapability::Service::VOLUME_ACCESSIBILITY_CONSTRAINTS);
  return grpc::Status::OK;
}

grpc::Status IdentityService::Probe(grpc::ServerContext*, const pb::ProbeRequest*, pb::ProbeResponse* resp) {
  try {
    Status serving = store_->CheckServing();
    if (!serving.ok()) TLOG_DEBUG("csi: probe: not ready: %s", serving.message().c_str());
    resp->mutable_ready()->set_value(serving.ok());
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    return grpc::Status(grpc::StatusCode::INTERNAL, e.what());
  }
}

}  // namespace tempfs::csi
