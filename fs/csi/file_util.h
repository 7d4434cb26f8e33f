// Small file-system helpers of the CSI plugin, errno turned into Status.
// Paths are used as given; none of these follow a symlink they did not get
// as the path itself, and RemoveTree never leaves the file system it starts
// on (a volume's tree is deleted without crossing into anything mounted in
// it).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace tempfs::csi {

// mkdir -p; the directories it creates get `mode` (umask applies).
Status MakeDirs(const std::string& path, mode_t mode);

// mkdir of the last component only; sets *created. Existing directory: OK.
Status MakeDir(const std::string& path, mode_t mode, bool* created);

// rm -rf: depth first, no symlink followed, no mount crossed. A missing path
// is OK.
Status RemoveTree(const std::string& path);

// Writes `content` to a temporary file beside `path`, fsyncs it and renames
// it over `path`, so readers see the old or the new content, never a part.
Status WriteFileAtomic(const std::string& path, const std::string& content, mode_t mode);

// The whole of a small file. ENOENT if missing.
Result<std::string> ReadSmallFile(const std::string& path);

// Names in a directory, without "." and "..". ENOENT if missing.
Result<std::vector<std::string>> ListDir(const std::string& path);

// "key=value" lines, the format of the plugin's small state files. Values
// may hold anything but a newline; keys are split at the first '='.
std::string FormatKeyValues(const std::map<std::string, std::string>& kv);
std::map<std::string, std::string> ParseKeyValues(const std::string& text);

// 16 hex digits of xxHash64: a fixed-length file name for a path.
std::string PathHash(const std::string& path);

}  // namespace tempfs::csi
