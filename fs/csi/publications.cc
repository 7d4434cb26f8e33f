#include "csi/publications.h"

#include <unistd.h>

#include <cerrno>
#include <map>

#include "common/log.h"
#include "csi/file_util.h"

namespace tempfs::csi {

PublicationTable::PublicationTable(std::string state_dir) : dir_(std::move(state_dir) + "/targets") {}

Status PublicationTable::Init() { return MakeDirs(dir_, 0700); }

std::string PublicationTable::PathFor(const std::string& target) const {
  return dir_ + "/" + PathHash(target) + ".pub";
}

Result<Publication> PublicationTable::Parse(const std::string& text) {
  auto kv = ParseKeyValues(text);
  Publication p;
  p.target = kv["target"];
  p.volume_id = kv["volume_id"];
  p.key.ns = kv["ns"];
  p.key.name = kv["name"];
  p.key.by_id = kv["by_id"] == "1";
  p.readonly = kv["readonly"] == "1";
  p.released = kv["released"] == "1";
  p.created_target = kv["created_target"] == "1";
  auto r = ParseRetention(kv["retention"]);
  if (r.ok()) p.retention = *r;
  // Names are checked again: the record decides which directories are
  // touched.
  if (p.target.empty() || p.target[0] != '/' || p.volume_id.empty() ||
      !(p.key.ns == kNoNamespace || CheckDnsLabel("ns", p.key.ns).ok()) ||
      !(p.key.by_id ? CheckVolumeId(p.key.name) : CheckDnsLabel("name", p.key.name)).ok()) {
    return Status::Err(EINVAL, "malformed publication record");
  }
  return p;
}

Result<std::optional<Publication>> PublicationTable::Find(const std::string& target) const {
  auto text = ReadSmallFile(PathFor(target));
  if (!text.ok()) {
    if (text.err() == ENOENT) return std::optional<Publication>();
    return text.status();
  }
  auto p = Parse(*text);
  if (!p.ok()) return Status::Err(p.err(), PathFor(target) + ": " + p.status().message());
  if (p->target != target) return std::optional<Publication>();  // a hash collision
  return std::optional<Publication>(*p);
}

Status PublicationTable::Put(const Publication& p) {
  std::map<std::string, std::string> kv = {
      {"target", p.target},
      {"volume_id", p.volume_id},
      {"ns", p.key.ns},
      {"name", p.key.name},
      {"by_id", p.key.by_id ? "1" : "0"},
      {"readonly", p.readonly ? "1" : "0"},
      {"retention", FormatRetention(p.retention)},
      {"released", p.released ? "1" : "0"},
      {"created_target", p.created_target ? "1" : "0"},
  };
  return WriteFileAtomic(PathFor(p.target), FormatKeyValues(kv), 0600);
}

Status PublicationTable::Remove(const std::string& target) {
  const std::string path = PathFor(target);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno("unlink " + path);
  return Status::Ok();
}

std::vector<Publication> PublicationTable::List() const {
  std::vector<Publication> out;
  auto names = ListDir(dir_);
  if (!names.ok()) return out;
  for (const std::string& n : *names) {
    if (n.size() < 4 || n.compare(n.size() - 4, 4, ".pub") != 0) continue;
    auto text = ReadSmallFile(dir_ + "/" + n);
    if (!text.ok()) continue;
    auto p = Parse(*text);
    if (!p.ok()) {
      TLOG_WARN("csi: skipping %s/%s: %s", dir_.c_str(), n.c_str(), p.status().ToString().c_str());
      continue;
    }
    out.push_back(*p);
  }
  return out;
}

}  // namespace tempfs::csi
