// Names and attribute values of the CSI node plugin: the driver's identity,
// the keys of a volume's attributes (`volumeAttributes` in Kubernetes), and
// the checks every name and value passes before it becomes a path or a
// setting. Pure functions; thread-safe.
//
// A name that could reach outside its place (`..`, `/`, NUL, over-long, not a
// DNS label) is refused with EINVAL and a message naming the field; the
// plugin answers INVALID_ARGUMENT for it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace tempfs::csi {

// The CSI driver name: GetPluginInfo, the CSIDriver object, every pod's
// `csi.driver` and the plugin's socket directory use exactly this.
inline constexpr char kDriverName[] = "tempfs.csi.local";
inline constexpr char kVendorVersion[] = "0.1.0";
// NodeGetInfo's topology key; its value is the node id. Kubelet copies it to
// a node label, so PersistentVolumes can pin their data's node by affinity.
inline constexpr char kTopologyKey[] = "tempfs.csi.local/node";

// Volume attributes a user sets.
inline constexpr char kAttrVolume[] = "volume";        // the shared volume's name
inline constexpr char kAttrCapacity[] = "capacity";    // e.g. "1Gi" (enforced: ENOSPC in pods)
inline constexpr char kAttrRetention[] = "retention";  // "delete" | "keep" | a duration
// What kubelet adds (CSIDriver podInfoOnMount: true). It overwrites any value
// a user wrote under these keys, so a pod cannot claim another namespace.
inline constexpr char kCtxPodNamespace[] = "csi.storage.k8s.io/pod.namespace";
inline constexpr char kCtxPodName[] = "csi.storage.k8s.io/pod.name";
inline constexpr char kCtxEphemeral[] = "csi.storage.k8s.io/ephemeral";
// The namespace directory of requests without pod information. Not a DNS
// label, so it never collides with a Kubernetes namespace.
inline constexpr char kNoNamespace[] = "_pv";

// A Kubernetes DNS label (RFC 1123): 1-63 of [a-z0-9-], alphanumeric at both
// ends. Namespaces and volume names are such labels.
Status CheckDnsLabel(std::string_view field, std::string_view value);

// A volume id used as a directory name (volumes without a `volume`
// attribute): 1-128 of [A-Za-z0-9._-], not starting with '.'.
Status CheckVolumeId(std::string_view volume_id);

// A node id usable as a file name and a label value: 1-63 of [A-Za-z0-9._-],
// alphanumeric at both ends.
Status CheckNodeId(std::string_view node_id);

// An absolute path without NUL or newline (publish targets; target_dir.h
// confines them further).
Status CheckTargetPath(std::string_view field, std::string_view path);

// A Kubernetes quantity of bytes: "1073741824", "512Mi", "1Gi", "1.5G",
// "100k". Binary suffixes Ki..Ei, decimal k..E. The result must be a
// positive whole number of bytes: "0", "0.5" or "1.5" (bytes) are EINVAL,
// as are signs, other suffixes and values over 2^64 - 1.
Result<uint64_t> ParseQuantity(std::string_view s);

// What happens to a volume's data when its last publication goes.
struct Retention {
  enum class Kind { kDelete, kKeep, kKeepFor };
  Kind kind = Kind::kDelete;
  int64_t seconds = 0;  // kKeepFor only

  bool operator==(const Retention&) const = default;
};

// "delete", "keep", or a duration "<n>s|m|h|d" (keep that long, then delete).
Result<Retention> ParseRetention(std::string_view s);
std::string FormatRetention(const Retention& r);

}  // namespace tempfs::csi
