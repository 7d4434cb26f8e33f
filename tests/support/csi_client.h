// Test support for the CSI node plugin: runs `tempfs csi` (the binary under
// test) as a child on a Unix socket in a private directory, and speaks CSI
// gRPC to it as kubelet does. Every call has a deadline; the destructor
// always leaves no plugin process behind.
#ifndef TEMPFS_TESTS_SUPPORT_CSI_CLIENT_H_
#define TEMPFS_TESTS_SUPPORT_CSI_CLIENT_H_

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "csi/csi.grpc.pb.h"

namespace tempfs::testing {

class CsiPlugin {
 public:
  // Starts `tempfs csi --endpoint unix://DIR/plugin/csi.sock --node-id NODE
  // --mount MNT --check-interval 0.2 EXTRA...` (log: DIR/csi.log) and waits
  // until it answers GetPluginInfo. Fails the test and returns nullptr if it
  // does not.
  static std::unique_ptr<CsiPlugin> Start(const std::string& dir, const std::string& mnt,
                                          const std::string& node_id = "node-a",
                                          std::vector<std::string> extra_args = {});
  ~CsiPlugin();
  CsiPlugin(const CsiPlugin&) = delete;
  CsiPlugin& operator=(const CsiPlugin&) = delete;

  // Sends `sig` and waits (bounded) for the process to exit; SIGKILL after.
  void Stop(int sig = SIGTERM);
  // Starts it again with the same arguments; false (with a failure) if it
  // does not answer.
  bool Restart();
  bool Running() const { return pid_ > 0; }

  const std::string& socket_path() const { return socket_; }
  std::string LogTail(size_t max_bytes = 4000) const;

  grpc::Status GetPluginInfo(::csi::v1::GetPluginInfoResponse* resp);
  grpc::Status GetPluginCapabilities(::csi::v1::GetPluginCapabilitiesResponse* resp);
  grpc::Status Probe(::csi::v1::ProbeResponse* resp);
  grpc::Status NodeGetInfo(::csi::v1::NodeGetInfoResponse* resp);
  grpc::Status NodeGetCapabilities(::csi::v1::NodeGetCapabilitiesResponse* resp);
  grpc::Status Publish(const ::csi::v1::NodePublishVolumeRequest& req);
  grpc::Status Unpublish(const std::string& volume_id, const std::string& target);
  grpc::Status Unpublish(const ::csi::v1::NodeUnpublishVolumeRequest& req);
  grpc::Status Stats(const ::csi::v1::NodeGetVolumeStatsRequest& req, ::csi::v1::NodeGetVolumeStatsResponse* resp);

 private:
  CsiPlugin(std::string dir, std::vector<std::string> argv);
  bool Launch();
  void Connect();

  std::string dir_;
  std::string socket_;
  std::string log_;
  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<::csi::v1::Identity::Stub> identity_;
  std::unique_ptr<::csi::v1::Node::Stub> node_;
};

// What kubelet sends for an inline ephemeral `csi:` volume of a pod in
// namespace `ns` (podInfoOnMount): the pod's volumeAttributes plus the pod
// information, a mount capability, and `readonly`.
::csi::v1::NodePublishVolumeRequest InlineVolume(const std::string& volume_id, const std::string& target,
                                                 const std::string& ns,
                                                 const std::map<std::string, std::string>& attributes,
                                                 bool readonly = false);

// A readable "CODE: message" for assertion output.
std::string Describe(const grpc::Status& status);

}  // namespace tempfs::testing

#endif  // TEMPFS_TESTS_SUPPORT_CSI_CLIENT_H_
