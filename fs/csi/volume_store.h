// The volumes in one node's tempfs mount, as the CSI plugin files them:
//
//   MNT/volumes/<ns>/<name>            a named volume's data: what pods see
//   MNT/volumes/<ns>/_id/<volume_id>   an unnamed volume's data (private to
//                                      its volume id, e.g. one pod's inline
//                                      volume)
//   MNT/.tempfs-csi/<rel>/attrs        capacity and retention, as last
//                                      published
//   MNT/.tempfs-csi/<rel>/pubs/<node>~<hash of target>  (target=, pod=)
//                                      one file per live publication, of
//                                      every node (in cluster mode the mount
//                                      is one namespace for all nodes)
//   MNT/.tempfs-csi/<rel>/expires      unix time after which an unused volume
//                                      kept "for a while" is deleted
//
// <ns> is the pod's Kubernetes namespace (or "_pv" without pod information)
// and <rel> is "<ns>/<name>" or "<ns>/_id/<volume_id>"; every component has
// passed names.h, so no request names a path outside these directories. Pods
// see only their volume's directory (a bind mount of it), never the state.
//
// Not thread-safe: the node service serializes calls. Across nodes (cluster
// mode) the publication files make "last publication" a cluster-wide count.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "csi/names.h"

namespace tempfs::csi {

struct VolumeKey {
  std::string ns;      // DNS label, or kNoNamespace
  std::string name;    // DNS label (the `volume` attribute), or the volume id
  bool by_id = false;  // name is a volume id

  std::string RelPath() const;
  bool operator==(const VolumeKey&) const = default;
};

struct VolumeSpec {
  VolumeKey key;
  uint64_t capacity = 0;  // bytes; 0 = none given
  Retention retention;
  std::string pod;  // "<namespace>/<pod name>" from kubelet's pod info, or ""
};

// A publish request's volume id and context as a volume: namespace from the
// pod information, name from the `volume` attribute (else the volume id),
// capacity and retention from their attributes. Retention defaults to
// "delete" for inline ephemeral volumes and to "keep" for PersistentVolumes.
// EINVAL, naming the field, for anything malformed or escaping.
Result<VolumeSpec> ResolveVolume(const std::string& volume_id, const std::map<std::string, std::string>& context);

class VolumeStore {
 public:
  VolumeStore(std::string mnt, std::string node_id);

  const std::string& mnt() const { return mnt_; }

  // OK while the node's tempfs mount serves (ENOTCONN otherwise).
  Status CheckServing() const;

  std::string DataDir(const VolumeKey& key) const;

  // Creates the volume's directory if needed (mode 0777, like emptyDir, so
  // pods of any user can use it; kubelet applies fsGroup), sets or lifts its
  // capacity limit (the daemon enforces it), records its attributes and this
  // publication, and cancels a pending expiry.
  Status Acquire(const VolumeSpec& spec, const std::string& target);

  // Drops this node's publication at `target`. When no publication of the
  // volume is left anywhere, applies its retention: delete the data now,
  // keep it, or keep it until now + the duration. `fallback` is used if the
  // volume's attributes are gone.
  Status Release(const VolumeKey& key, const std::string& target, const Retention& fallback);

  // The volume's recorded capacity (0 if none or unknown).
  uint64_t Capacity(const VolumeKey& key) const;

  // Deletes the volumes kept for a while whose time is up and that no
  // publication uses; returns their <rel> paths. Errors are logged; the
  // next round tries again.
  std::vector<std::string> CollectExpired(int64_t now_unix);

 private:
  std::string StateDir(const VolumeKey& key) const;
  std::string MarkerPath(const VolumeKey& key, const std::string& target) const;
  Status Delete(const VolumeKey& key);
  // The limit the daemon enforces on `data` (0: none), as kCapacityXattr.
  static Status SetCapacity(const std::string& data, uint64_t capacity);
  bool CollectIfExpired(const VolumeKey& key, int64_t now_unix);

  std::string mnt_;
  std::string node_id_;
};

}  // namespace tempfs::csi
