#include "csi/names.h"

#include <cerrno>
#include <limits>

namespace tempfs::csi {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }
bool IsIdChar(char c) { return IsAlnum(c) || c == '.' || c == '_' || c == '-'; }

// Quotes a value for an error message without letting it break the line.
std::string Shown(std::string_view v) {
  std::string out = "\"";
  for (char c : v.substr(0, 80)) {
    if (c == '\0') {
      out += "\\0";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += '?';
    } else {
      out += c;
    }
  }
  if (v.size() > 80) out += "...";
  return out + "\"";
}

Status Invalid(std::string_view field, std::string_view value, const std::string& why) {
  return Status::Err(EINVAL, std::string(field) + " " + Shown(value) + ": " + why);
}

}  // namespace

Status CheckDnsLabel(std::string_view field, std::string_view value) {
  if (value.empty()) return Invalid(field, value, "must not be empty");
  if (value.size() > 63) return Invalid(field, value, "longer than 63 bytes");
  for (char c : value) {
    if (!IsLowerAlnum(c) && c != '-') {
      return Invalid(field, value, "must be a DNS label: lowercase letters, digits and '-' only");
    }
  }
  if (!IsLowerAlnum(value.front()) || !IsLowerAlnum(value.back())) {
    return Invalid(field, value, "must start and end with a letter or digit");
  }
  return Status::Ok();
}

Status CheckVolumeId(std::string_view volume_id) {
  if (volume_id.empty()) return Invalid("volume_id", volume_id, "must not be empty");
  if (volume_id.size() > 128) return Invalid("volume_id", volume_id, "longer than 128 bytes");
  for (char c : volume_id) {
    if (!IsIdChar(c)) {
      return Invalid("volume_id", volume_id,
                     "used as a directory name (no `volume` attribute): only letters, digits, '.', '_' and '-'");
    }
  }
  if (volume_id.front() == '.') return Invalid("volume_id", volume_id, "must not start with '.'");
  return Status::Ok();
}

Status CheckNodeId(std::string_view node_id) {
  if (node_id.empty()) return Invalid("node id", node_id, "must not be empty");
  if (node_id.size() > 63) return Invalid("node id", node_id, "longer than 63 bytes");
  for (char c : node_id) {
    if (!IsIdChar(c)) return Invalid("node id", node_id, "only letters, digits, '.', '_' and '-'");
  }
  if (!IsAlnum(node_id.front()) || !IsAlnum(node_id.back())) {
    return Invalid("node id", node_id, "must start and end with a letter or digit");
  }
  return Status::Ok();
}

Status CheckTargetPath(std::string_view field, std::string_view path) {
  if (path.empty()) return Invalid(field, path, "is required");
  if (path.front() != '/') return Invalid(field, path, "must be an absolute path");
  if (path.find('\0') != std::string_view::npos || path.find('\n') != std::string_view::npos) {
    return Invalid(field, path, "must not contain NUL or newline");
  }
  if (path.size() >= 4096) return Invalid(field, path, "longer than PATH_MAX");
  return Status::Ok();
}

Result<uint64_t> ParseQuantity(std::string_view s) {
  const std::string_view orig = s;
  auto bad = [&](const std::string& why) {
    return Result<uint64_t>(Invalid("capacity", orig, why + " (a quantity like 512Mi, 1Gi or 1000000)"));
  };
  size_t i = 0;
  uint64_t whole = 0;
  bool digits = false;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    const uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (whole > (std::numeric_limits<uint64_t>::max() - digit) / 10) return bad("too large");
    whole = whole * 10 + digit;
    digits = true;
    i++;
  }
  // Up to 9 fraction digits, kept as an integer over 10^9.
  uint64_t frac = 0, frac_scale = 1;
  bool frac_dropped = false;  // nonzero digits beyond the ninth: never whole bytes
  if (i < s.size() && s[i] == '.') {
    i++;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (frac_scale < 1000000000ull) {
        frac = frac * 10 + static_cast<uint64_t>(s[i] - '0');
        frac_scale *= 10;
      } else if (s[i] != '0') {
        frac_dropped = true;
      }
      digits = true;
      i++;
    }
  }
  if (!digits) return bad("no number");
  std::string_view suffix = s.substr(i);
  uint64_t mult = 1;
  struct Unit {
    const char* name;
    uint64_t mult;
  };
  static const Unit kUnits[] = {
      {"", 1},
      {"Ki", 1ull << 10},
      {"Mi", 1ull << 20},
      {"Gi", 1ull << 30},
      {"Ti", 1ull << 40},
      {"Pi", 1ull << 50},
      {"Ei", 1ull << 60},
      {"k", 1000ull},
      {"M", 1000000ull},
      {"G", 1000000000ull},
      {"T", 1000000000000ull},
      {"P", 1000000000000000ull},
      {"E", 1000000000000000000ull},
  };
  bool found = false;
  for (const Unit& u : kUnits) {
    if (suffix == u.name) {
      mult = u.mult;
      found = true;
      break;
    }
  }
  if (!found) return bad("unknown suffix");
  if (whole != 0 && mult > std::numeric_limits<uint64_t>::max() / whole) return bad("too large");
  uint64_t bytes = whole * mult;
  // mult * frac / frac_scale without overflow: mult <= 2^60, frac < 10^9.
  const unsigned __int128 scaled = static_cast<unsigned __int128>(mult) * frac;
  if (frac_dropped || scaled % frac_scale != 0) return bad("not a whole number of bytes");
  const unsigned __int128 extra = scaled / frac_scale;
  if (extra > std::numeric_limits<uint64_t>::max() - bytes) return bad("too large");
  // Zero would read as "no limit": a capacity is a limit or absent.
  if (bytes + static_cast<uint64_t>(extra) == 0) return bad("must be more than zero");
  return bytes + static_cast<uint64_t>(extra);
}

Result<Retention> ParseRetention(std::string_view s) {
  if (s == "delete") return Retention{Retention::Kind::kDelete, 0};
  if (s == "keep") return Retention{Retention::Kind::kKeep, 0};
  auto bad = [&] {
    return Result<Retention>(
        Invalid("retention", s, "must be \"delete\", \"keep\" or a duration such as 90s, 30m, 12h or 7d"));
  };
  if (s.size() < 2 || s.size() > 12) return bad();
  int64_t n = 0;
  for (size_t i = 0; i + 1 < s.size(); i++) {
    if (s[i] < '0' || s[i] > '9') return bad();
    n = n * 10 + (s[i] - '0');
  }
  int64_t unit = 0;
  switch (s.back()) {
    case 's':
      unit = 1;
      break;
    case 'm':
      unit = 60;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'd':
      unit = 86400;
      break;
    default:
      return bad();
  }
  if (n <= 0 || n > 3650 * 86400 / unit) return bad();
  return Retention{Retention::Kind::kKeepFor, n * unit};
}

std::string FormatRetention(const Retention& r) {
  switch (r.kind) {
    case Retention::Kind::kDelete:
      return "delete";
    case Retention::Kind::kKeep:
      return "keep";
    case Retention::Kind::kKeepFor:
      return std::to_string(r.seconds) + "s";
  }
  return "delete";
}

}  // namespace tempfs::csi
