#include "support/csi_client.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "support/mount_fixture.h"

namespace tempfs::testing {
namespace {

namespace pb = ::csi::v1;
using std::chrono::milliseconds;

constexpr milliseconds kStartTimeout{20000};
constexpr milliseconds kStopTimeout{10000};
constexpr std::chrono::seconds kCallDeadline{30};

void SetDeadline(grpc::ClientContext* ctx) { ctx->set_deadline(std::chrono::system_clock::now() + kCallDeadline); }

}  // namespace

std::unique_ptr<CsiPlugin> CsiPlugin::Start(const std::string& dir, const std::string& mnt, const std::string& node_id,
                                            std::vector<std::string> extra_args) {
  std::vector<std::string> argv = {TempfsBin(),        "csi",   "--endpoint", "unix://" + dir + "/plugin/csi.sock",
                                   "--node-id",        node_id, "--mount",    mnt,
                                   "--check-interval", "0.2"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  std::unique_ptr<CsiPlugin> p(new CsiPlugin(dir, argv));
  if (!p->Launch()) return nullptr;
  return p;
}

CsiPlugin::CsiPlugin(std::string dir, std::vector<std::string> argv)
    : dir_(std::move(dir)), socket_(dir_ + "/plugin/csi.sock"), log_(dir_ + "/csi.log"), argv_(std::move(argv)) {}

CsiPlugin::~CsiPlugin() { Stop(SIGTERM); }

bool CsiPlugin::Launch() {
  // Everything the child needs is allocated before fork().
  std::vector<char*> ptrs;
  for (auto& s : argv_) ptrs.push_back(s.data());
  ptrs.push_back(nullptr);
  int log_fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    ADD_FAILURE() << "open " << log_ << ": " << strerror(errno);
    return false;
  }
  pid_t pid = fork();
  if (pid == 0) {
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    close_range(3, ~0U, 0);
    execv(ptrs[0], ptrs.data());
    _exit(127);
  }
  close(log_fd);
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << strerror(errno);
    return false;
  }
  pid_ = pid;
  bool up = WaitFor(
      [&] {
        int status;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          return true;
        }
        if (access(socket_.c_str(), F_OK) != 0) return false;
        // A fresh channel per attempt: one that met the previous plugin's
        // stale socket would wait out its reconnect backoff.
        Connect();
        pb::GetPluginInfoResponse info;
        return GetPluginInfo(&info).ok();
      },
      kStartTimeout);
  if (!up || pid_ < 0) {
    ADD_FAILURE() << "tempfs csi did not come up\n" << LogTail();
    Stop(SIGKILL);
    return false;
  }
  return true;
}

void CsiPlugin::Connect() {
  grpc::ChannelArguments args;
  // Reconnect quickly after a plugin restart.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  channel_ = grpc::CreateCustomChannel("unix:" + socket_, grpc::InsecureChannelCredentials(), args);
  identity_ = pb::Identity::NewStub(channel_);
  node_ = pb::Node::NewStub(channel_);
}

void CsiPlugin::Stop(int sig) {
  if (pid_ <= 0) return;
  // Hang up first: the plugin's shutdown waits for open connections.
  identity_.reset();
  node_.reset();
  channel_.reset();
  kill(pid_, sig);
  bool gone = WaitFor(
      [&] {
        int status;
        return waitpid(pid_, &status, WNOHANG) == pid_;
      },
      kStopTimeout);
  if (!gone) {
    ADD_FAILURE() << "tempfs csi (pid " << pid_ << ") ignored signal " << sig << "\n" << LogTail();
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
  }
  pid_ = -1;
}

bool CsiPlugin::Restart() {
  Stop(SIGTERM);
  return Launch();
}

std::string CsiPlugin::LogTail(size_t max_bytes) const {
  std::ifstream in(log_, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_bytes) s = "..." + s.substr(s.size() - max_bytes);
  return "--- " + log_ + " ---\n" + s;
}

#define TEMPFS_CSI_CALL(stub, method, req, resp) \
  grpc::ClientContext ctx;                       \
  SetDeadline(&ctx);                             \
  return stub->method(&ctx, req, resp)

grpc::Status CsiPlugin::GetPluginInfo(pb::GetPluginInfoResponse* resp) {
  TEMPFS_CSI_CALL(identity_, GetPluginInfo, pb::GetPluginInfoRequest(), resp);
}

grpc::Status CsiPlugin::GetPluginCapabilities(pb::GetPluginCapabilitiesResponse* resp) {
  TEMPFS_CSI_CALL(identity_, GetPluginCapabilities, pb::GetPluginCapabilitiesRequest(), resp);
}

grpc::Status CsiPlugin::Probe(pb::ProbeResponse* resp) { TEMPFS_CSI_CALL(identity_, Probe, pb::ProbeRequest(), resp); }

grpc::Status CsiPlugin::NodeGetInfo(pb::NodeGetInfoResponse* resp) {
  TEMPFS_CSI_CALL(node_, NodeGetInfo, pb::NodeGetInfoRequest(), resp);
}

grpc::Status CsiPlugin::NodeGetCapabilities(pb::NodeGetCapabilitiesResponse* resp) {
  TEMPFS_CSI_CALL(node_, NodeGetCapabilities, pb::NodeGetCapabilitiesRequest(), resp);
}

grpc::Status CsiPlugin::Publish(const pb::NodePublishVolumeRequest& req) {
  pb::NodePublishVolumeResponse resp;
  TEMPFS_CSI_CALL(node_, NodePublishVolume, req, &resp);
}

grpc::Status CsiPlugin::Unpublish(const pb::NodeUnpublishVolumeRequest& req) {
  pb::NodeUnpublishVolumeResponse resp;
  TEMPFS_CSI_CALL(node_, NodeUnpublishVolume, req, &resp);
}

grpc::Status CsiPlugin::Unpublish(const std::string& volume_id, const std::string& target) {
  pb::NodeUnpublishVolumeRequest req;
  req.set_volume_id(volume_id);
  req.set_target_path(target);
  return Unpublish(req);
}

grpc::Status CsiPlugin::Stats(const pb::NodeGetVolumeStatsRequest& req, pb::NodeGetVolumeStatsResponse* resp) {
  TEMPFS_CSI_CALL(node_, NodeGetVolumeStats, req, resp);
}

#undef TEMPFS_CSI_CALL

pb::NodePublishVolumeRequest InlineVolume(const std::string& volume_id, const std::string& target,
                                          const std::string& ns, const std::map<std::string, std::string>& attributes,
                                          bool readonly) {
  pb::NodePublishVolumeRequest req;
  req.set_volume_id(volume_id);
  req.set_target_path(target);
  req.set_readonly(readonly);
  auto* cap = req.mutable_volume_capability();
  cap->mutable_mount();
  cap->mutable_access_mode()->set_mode(pb::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
  auto& ctx = *req.mutable_volume_context();
  for (const auto& [k, v] : attributes) ctx[k] = v;
  // Kubelet's pod information overrides what the pod spec said.
  ctx["csi.storage.k8s.io/pod.namespace"] = ns;
  ctx["csi.storage.k8s.io/pod.name"] = "pod-" + volume_id;
  ctx["csi.storage.k8s.io/pod.uid"] = "uid-" + volume_id;
  ctx["csi.storage.k8s.io/serviceAccount.name"] = "default";
  ctx["csi.storage.k8s.io/ephemeral"] = "true";
  return req;
}

std::string Describe(const grpc::Status& status) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  int code = static_cast<int>(status.error_code());
  std::string name = code >= 0 && code <= 16 ? kNames[code] : std::to_string(code);
  return status.ok() ? "OK" : name + ": " + status.error_message();
}

}  // namespace tempfs::testing
