// tempfs: mount and unmount a node's tempfs.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <sstream>

#include "daemon/daemon.h"
#include "daemon/fsck.h"
#include "parse.h"
#ifdef TEMPFS_WITH_CSI
#include "csi/csi_main.h"
#endif

namespace {

std::vector<std::string> SplitOptions(const std::vector<std::string>& raw) {
  std::vector<std::string> out;
  for (auto& r : raw) {
    std::stringstream ss(r);
    std::string o;
    while (std::getline(ss, o, ',')) {
      if (!o.empty()) out.push_back(o);
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tempfs: node-local shared storage for temporary data"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "tempfs 0.1.0");

  tempfs::MountConfig mc;
  std::vector<std::string> raw_opts;
  bool no_passthrough = false, no_writeback = false;
  auto* mount = app.add_subcommand("mount", "mount a tempfs node (returns once it serves)");
  mount->add_option("--store", mc.store, "directory on this node that holds the data")->required();
  mount->add_option("mountpoint", mc.mountpoint, "where to mount")->required();
  mount->add_flag("-f,--foreground", mc.foreground, "stay in the foreground (log to stderr)");
  mount->add_option("-o", raw_opts, "FUSE mount options, comma-separated (e.g. ro)");
  mount->add_option("--log", mc.log_file, "log file (default: STORE/tempfs.log in the background)");
  mount->add_option("--meta", mc.meta_uri, "metadata engine URI (default: embedded)");
  mount->add_flag("--no-passthrough", no_passthrough, "never use kernel passthrough (fallback data path)");
  mount->add_flag("--no-writeback-cache", no_writeback, "no kernel writeback cache in the fallback path");
  mount->add_flag("--debug", mc.debug, "log every FUSE request");
  mount->add_option("--node-id", mc.node_id, "cluster mode: this node's name (stable across restarts)");
  mount->add_option("--listen", mc.listen, "cluster mode: HOST:PORT to serve peers on");
  mount->add_option("--advertise", mc.advertise, "cluster mode: HOST:PORT the other nodes use (default: --listen)");
  mount->add_option("--secret-file", mc.secret_file, "cluster mode: file with the cluster secret (mode 600)");
  mount->add_option("--peer-timeout", mc.peer_timeout, "cluster mode: seconds a silent peer gets before reads fail with EIO")
      ->capture_default_str();
  mount->add_flag("--join-new-namespace", mc.join_new_namespace,
                  "cluster mode: join the namespace in Redis (or start one in an empty Redis) although this store "
                  "belongs to another or to one Redis lost; the store's old data is moved to STORE/lost+found");
  mount->add_option("--metrics", mc.metrics, "serve Prometheus metrics on HOST:PORT (GET /metrics); off by default");
  mount->add_option("--cache-timeout", mc.cache_timeout, "cluster mode: seconds the kernel caches names and attributes")
      ->capture_default_str();

  std::string umount_point;
  bool lazy = false;
  auto* umount = app.add_subcommand("umount", "unmount a tempfs node (also a dead one)");
  umount->add_option("mountpoint", umount_point, "the mount point")->required();
  umount->add_flag("-l,--lazy", lazy, "detach even if busy");

  std::string fsck_store;
  auto* fsck = app.add_subcommand(
      "fsck", "check a store's metadata (not while mounted); recover what is readable when it is damaged");
  fsck->add_option("store", fsck_store, "the store directory (as given to mount --store)")->required();

#ifdef TEMPFS_WITH_CSI
  tempfs::CsiConfig csi_config;
  auto* csi = app.add_subcommand("csi", "run the Kubernetes CSI node plugin for this node's tempfs mount");
  tempfs::AddCsiOptions(*csi, csi_config);
#endif

  if (auto rc = tempfs::ParseArgs(app, argc, argv, "tempfs")) return *rc;
  if (mount->parsed()) {
    mc.fuse_options = SplitOptions(raw_opts);
    mc.passthrough = !no_passthrough;
    mc.writeback_cache = !no_writeback;
    return tempfs::RunMount(mc);
  }
  if (fsck->parsed()) return tempfs::RunFsck(fsck_store);
#ifdef TEMPFS_WITH_CSI
  if (csi->parsed()) return tempfs::RunCsi(csi_config);
#endif
  return tempfs::RunUmount(umount_point, lazy);
}
