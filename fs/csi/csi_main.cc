#include "csi/csi_main.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "csi/file_util.h"
#include "csi/identity_service.h"
#include "csi/mounts.h"
#include "csi/names.h"
#include "csi/node_service.h"
#include "csi/publications.h"
#include "csi/volume_store.h"
#include "daemon/mount_table.h"

namespace tempfs {
namespace {

// The socket path of a CSI endpoint.
Result<std::string> SocketPath(const std::string& endpoint) {
  std::string path = endpoint;
  if (path.rfind("unix://", 0) == 0) {
    path = path.substr(7);
  } else if (path.rfind("unix:", 0) == 0) {
    path = path.substr(5);
  }
  if (path.empty() || path[0] != '/') {
    return Status::Err(EINVAL, "--endpoint must be unix:///ABSOLUTE/PATH, not \"" + endpoint + "\"");
  }
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Status::Err(ENAMETOOLONG, "socket path too long for a Unix socket: " + path);
  }
  return LexicalAbsolute(path);
}

// Makes the socket path free: a socket file nobody answers on is removed; a
// live one (another plugin) or a non-socket is an error.
Status ClearSocket(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? Status::Ok() : Status::FromErrno("lstat " + path);
  }
  if (!S_ISSOCK(st.st_mode)) return Status::Err(EEXIST, path + " exists and is not a socket");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  bool live = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  if (live) return Status::Err(EADDRINUSE, "another process serves " + path);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno("removing stale socket " + path);
  TLOG_INFO("csi: removed stale socket %s", path.c_str());
  return Status::Ok();
}

int Fail(const std::string& msg) {
  fprintf(stderr, "tempfs csi: %s\n", msg.c_str());
  return 1;
}

}  // namespace

void AddCsiOptions(CLI::App& app, CsiConfig& c) {
  app.add_option("--endpoint", c.endpoint, "CSI endpoint: unix:///PATH/csi.sock")->required();
  app.add_option("--node-id", c.node_id, "this node's name (NodeGetInfo and topology)")->required();
  app.add_option("--mount", c.mount, "this node's tempfs mount point")->required();
  app.add_option("--state-dir", c.state_dir, "where the plugin keeps its records (default: state/ beside the socket)");
  app.add_option("--kubelet-dir", c.kubelet_dir,
                 "kubelet's root directory (its --root-dir): publish targets outside it are refused")
      ->capture_default_str();
  app.add_option("--check-interval", c.check_interval,
                 "seconds between maintenance rounds (re-binding after a daemon restart, expiries)")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--max-volumes-per-node", c.max_volumes_per_node, "reported to the scheduler (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--debug", c.debug, "log more");
}

int RunCsi(const CsiConfig& c) {
  SetLogLevel(c.debug ? LogLevel::kDebug : LogLevel::kInfo);
  // Signals are taken by sigwait below; every thread (gRPC's included)
  // inherits this mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto socket_path = SocketPath(c.endpoint);
  if (!socket_path.ok()) return Fail(socket_path.status().message());
  if (Status st = csi::CheckNodeId(c.node_id); !st.ok()) return Fail(st.message());
  const std::string mnt = csi::CanonicalPath(c.mount);
  const std::string sock_dir = socket_path->substr(0, socket_path->rfind('/'));
  const std::string state_dir = c.state_dir.empty() ? sock_dir + "/state" : csi::CanonicalPath(c.state_dir);

  csi::PublicationTable pubs(state_dir);
  if (Status st = pubs.Init(); !st.ok()) return Fail(st.ToString());
  if (Status st = csi::MakeDirs(sock_dir.empty() ? "/" : sock_dir, 0750); !st.ok()) return Fail(st.ToString());
  if (Status st = ClearSocket(*socket_path); !st.ok()) return Fail(st.ToString());

  csi::VolumeStore store(mnt, c.node_id);
  csi::IdentityService identity(&store);
  csi::NodeService node(csi::NodeOptions{c.node_id, c.max_volumes_per_node, c.kubelet_dir}, &store, &pubs);

  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + *socket_path, grpc::InsecureServerCredentials());
  builder.RegisterService(&identity);
  builder.RegisterService(&node);
  // Created with mode 0600 (kubelet and the sidecars run as root); chmod
  // again in case the library changes how it creates the file.
  mode_t old_umask = umask(0177);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  umask(old_umask);
  if (!server) return Fail("cannot listen on " + *socket_path);
  chmod(socket_path->c_str(), 0600);

  Status serving = store.CheckServing();
  TLOG_INFO("csi: %s %s serving node %s on %s; tempfs mount %s (%s); state in %s; targets beneath %s", csi::kDriverName,
            csi::kVendorVersion, c.node_id.c_str(), socket_path->c_str(), mnt.c_str(),
            serving.ok() ? "serving" : serving.message().c_str(), state_dir.c_str(), c.kubelet_dir.c_str());

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::thread maintenance([&] {
    const auto interval = std::chrono::duration<double>(c.check_interval);
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      lock.unlock();
      node.Maintain();
      lock.lock();
      cv.wait_for(lock, interval, [&] { return stopping; });
    }
  });

  int sig = 0;
  while (sigwait(&sigs, &sig) != 0) {
  }
  TLOG_INFO("csi: signal %d, stopping", sig);
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
  }
  cv.notify_all();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  maintenance.join();
  unlink(socket_path->c_str());
  return 0;
}

}  // namespace tempfs
