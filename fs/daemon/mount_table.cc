#include "daemon/mount_table.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

namespace tempfs {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t k = 1; k <= 3; k++) {
        char c = s[i + k];
        if (c < '0' || c > '7') { ok = false; break; }
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace

std::string LexicalAbsolute(const std::string& path) {
  std::string p = path;
  if (p.empty() || p[0] != '/') {
    char buf[4096];
    std::string cwd = getcwd(buf, sizeof buf) != nullptr ? buf : "/";
    p = cwd + "/" + p;
  }
  std::vector<std::string> parts;
  std::stringstream ss(p);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (auto& x : parts) out += "/" + x;
  return out.empty() ? "/" : out;
}

std::vector<MountEntry> AllMounts() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::vector<MountEntry> out;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<std::string> f;
    std::string w;
    while (ls >> w) f.push_back(w);
    if (f.size() < 7) continue;
    size_t sep = 6;
    while (sep < f.size() && f[sep] != "-") sep++;
    if (sep + 2 >= f.size()) continue;
    out.push_back(
        MountEntry{Unescape(f[4]), f[sep + 1], Unescape(f[sep + 2]), Unescape(f[3]), std::atoi(f[0].c_str()), f[2]});
  }
  return out;
}

std::optional<MountEntry> FindMount(const std::string& abs_path) {
  std::optional<MountEntry> found;
  for (auto& m : AllMounts()) {
    if (m.mountpoint == abs_path) found = m;
  }
  return found;
}

std::string StoreOf(const MountEntry& m) {
  const std::string prefix = "tempfs:";
  if (m.fstype != "fuse.tempfs" || m.source.compare(0, prefix.size(), prefix) != 0) return "";
  return m.source.substr(prefix.size());
}

}  // namespace tempfs
