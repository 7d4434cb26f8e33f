// This node's own record of what the plugin published where: one small file
// per publish target, under the plugin's state directory on the node's disk
// (STATE/targets/<hash of target>). It is kept outside the tempfs mount so
// that unpublishing works while the mount is dead, and it survives plugin
// restarts: NodeUnpublishVolume and NodeGetVolumeStats, which carry no
// volume context, find the volume through it, and the plugin's maintenance
// re-binds and releases from it.
//
// Not thread-safe: the node service serializes calls.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "csi/names.h"
#include "csi/volume_store.h"

namespace tempfs::csi {

struct Publication {
  std::string target;  // canonical absolute path
  std::string volume_id;
  VolumeKey key;
  bool readonly = false;
  Retention retention;  // as requested, in case the volume's attributes are gone
  // Unmounted, but the volume's publication file is still to be dropped
  // (the tempfs mount was not serving at unpublish time).
  bool released = false;
  // Publish created the target directory, so unpublish removes it (when
  // empty); a directory that was there before is left for kubelet.
  bool created_target = false;
};

class PublicationTable {
 public:
  explicit PublicationTable(std::string state_dir);

  // Creates the state directory (mode 0700).
  Status Init();

  // The record for `target`, or nullopt.
  Result<std::optional<Publication>> Find(const std::string& target) const;
  Status Put(const Publication& p);
  // Missing is OK.
  Status Remove(const std::string& target);
  // Every readable record; unreadable ones are logged and skipped.
  std::vector<Publication> List() const;

 private:
  std::string PathFor(const std::string& target) const;
  static Result<Publication> Parse(const std::string& text);

  std::string dir_;
};

}  // namespace tempfs::csi
