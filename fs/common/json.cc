#include "common/json.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace tempfs {

Json& Json::Set(std::string key, Json value) & {
  if (!is_object()) v_ = Members{};
  auto& members = std::get<Members>(v_);
  for (auto& [k, v] : members) {
    if (k == key) {
      v = std::move(value);
      return *this;
    }
  }
  members.emplace_back(std::move(key), std::move(value));
  return *this;
}

Json& Json::Push(Json value) & {
  if (!is_array()) v_ = List{};
  std::get<List>(v_).push_back(std::move(value));
  return *this;
}

bool Json::as_bool() const { return is_bool() && std::get<bool>(v_); }

int64_t Json::as_int() const {
  if (is_int()) return std::get<int64_t>(v_);
  if (is_double()) {
    double d = std::trunc(std::get<double>(v_));
    // 2^63 itself does not fit; -2^63 does.
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0) return static_cast<int64_t>(d);
  }
  return 0;
}

double Json::as_double() const {
  if (is_double()) return std::get<double>(v_);
  if (is_int()) return static_cast<double>(std::get<int64_t>(v_));
  return 0;
}

const std::string& Json::as_string() const {
  static const std::string kEmpty;
  return is_string() ? std::get<std::string>(v_) : kEmpty;
}

const Json::List& Json::items() const {
  static const List kEmpty;
  return is_array() ? std::get<List>(v_) : kEmpty;
}

const Json::Members& Json::members() const {
  static const Members kEmpty;
  return is_object() ? std::get<Members>(v_) : kEmpty;
}

size_t Json::size() const {
  if (is_array()) return std::get<List>(v_).size();
  if (is_object()) return std::get<Members>(v_).size();
  return 0;
}

const Json* Json::Find(std::string_view key) const {
  for (const auto& [k, v] : members()) {
    if (k == key) return &v;
  }
  return nullptr;
}

bool operator==(const Json& a, const Json& b) { return a.v_ == b.v_; }

// ---- Dump ----

namespace {

void DumpString(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out += '"';
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out += kHex[u >> 4];
          out += kHex[u & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void DumpDouble(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);  // shortest that reads back exactly
  std::string_view s(buf, end - buf);
  out += s;
  // Keep it a double when read back: "1" would come back as an integer.
  if (s.find_first_of(".e") == std::string_view::npos) out += ".0";
}

void NewLine(std::string& out, int indent, int level) {
  out += '\n';
  out.append(static_cast<size_t>(indent) * level, ' ');
}

}  // namespace

void Json::DumpTo(std::string& out, int indent, int level) const {
  switch (type()) {
    case Type::kNull: out += "null"; break;
    case Type::kBool: out += std::get<bool>(v_) ? "true" : "false"; break;
    case Type::kInt: out += std::to_string(std::get<int64_t>(v_)); break;
    case Type::kDouble: DumpDouble(out, std::get<double>(v_)); break;
    case Type::kString: DumpString(out, std::get<std::string>(v_)); break;
    case Type::kArray: {
      const auto& list = std::get<List>(v_);
      out += '[';
      for (size_t i = 0; i < list.size(); ++i) {
        if (i > 0) out += ',';
        if (indent >= 0) NewLine(out, indent, level + 1);
        list[i].DumpTo(out, indent, level + 1);
      }
      if (indent >= 0 && !list.empty()) NewLine(out, indent, level);
      out += ']';
      break;
    }
    case Type::kObject: {
      const auto& members = std::get<Members>(v_);
      out += '{';
      for (size_t i = 0; i < members.size(); ++i) {
        if (i > 0) out += ',';
        if (indent >= 0) NewLine(out, indent, level + 1);
        DumpString(out, members[i].first);
        out += indent >= 0 ? ": " : ":";
        members[i].second.DumpTo(out, indent, level + 1);
      }
      if (indent >= 0 && !members.empty()) NewLine(out, indent, level);
      out += '}';
      break;
    }
  }
}

std::string Json::Dump(int indent) const {
  std::string out;
  DumpTo(out, indent < 0 ? -1 : indent, 0);
  return out;
}

// ---- Parse ----

namespace {

// Recursive descent over the text; the first error stops it and is kept.
class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Result<Json> Run() {
    Json v;
    SkipSpace();
    if (!Value(v, 0)) return error_;
    SkipSpace();
    if (pos_ != s_.size()) return Fail("unexpected text after the value");
    return v;
  }

 private:
  Status Fail(const std::string& what) {
    if (error_.ok()) error_ = Status::Err(EINVAL, "json: " + what + " at byte " + std::to_string(pos_));
    return error_;
  }
  bool FailB(const std::string& what) {
    (void)Fail(what);
    return false;
  }
  bool AtEnd() const { return pos_ >= s_.size(); }
  char Peek() const { return AtEnd() ? '\0' : s_[pos_]; }

  void SkipSpace() {
    while (!AtEnd() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  bool Literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return FailB("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool Value(Json& out, int depth) {
    if (AtEnd()) return FailB("unexpected end of input");
    switch (Peek()) {
      case '{': return ObjectValue(out, depth + 1);
      case '[': return ArrayValue(out, depth + 1);
      case '"': {
        std::string s;
        if (!String(s)) return false;
        out = Json(std::move(s));
        return true;
      }
      case 't': out = Json(true); return Literal("true");
      case 'f': out = Json(false); return Literal("false");
      case 'n': out = Json(); return Literal("null");
      default:
        if (Peek() == '-' || (Peek() >= '0' && Peek() <= '9')) return Number(out);
        return FailB("unexpected character");
    }
  }

  bool ObjectValue(Json& out, int depth) {
    if (depth > Json::kMaxDepth) return FailB("nesting deeper than " + std::to_string(Json::kMaxDepth));
    ++pos_;  // '{'
    out = Json::Object();
    SkipSpace();
    if (Peek() == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      SkipSpace();
      if (Peek() != '"') return FailB("expected a string key");
      std::string key;
      if (!String(key)) return false;
      SkipSpace();
      if (Peek() != ':') return FailB("expected ':'");
      ++pos_;
      SkipSpace();
      Json v;
      if (!Value(v, depth)) return false;
      out.Set(std::move(key), std::move(v));
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == '}') {
        ++pos_;
        return true;
      }
      return FailB("expected ',' or '}'");
    }
  }

  bool ArrayValue(Json& out, int depth) {
    if (depth > Json::kMaxDepth) return FailB("nesting deeper than " + std::to_string(Json::kMaxDepth));
    ++pos_;  // '['
    out = Json::Array();
    SkipSpace();
    if (Peek() == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      SkipSpace();
      Json v;
      if (!Value(v, depth)) return false;
      out.Push(std::move(v));
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == ']') {
        ++pos_;
        return true;
      }
      return FailB("expected ',' or ']'");
    }
  }

  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

  bool Number(Json& out) {
    size_t start = pos_;
    bool integral = true;
    if (Peek() == '-') ++pos_;
    if (Peek() == '0') {
      ++pos_;
      if (IsDigit(Peek())) return FailB("leading zero in a number");
    } else if (IsDigit(Peek())) {
      while (IsDigit(Peek())) ++pos_;
    } else {
      return FailB("expected a digit");
    }
    if (Peek() == '.') {
      integral = false;
      ++pos_;
      if (!IsDigit(Peek())) return FailB("expected a digit after '.'");
      while (IsDigit(Peek())) ++pos_;
    }
    if (Peek() == 'e' || Peek() == 'E') {
      integral = false;
      ++pos_;
      if (Peek() == '+' || Peek() == '-') ++pos_;
      if (!IsDigit(Peek())) return FailB("expected a digit in the exponent");
      while (IsDigit(Peek())) ++pos_;
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    if (integral) {
      int64_t n = 0;
      auto [p, ec] = std::from_chars(first, last, n);
      if (ec == std::errc() && p == last) {
        out = Json(n);
        return true;
      }
      // Too large for int64: fall through to a double.
    }
    double d = 0;
    auto [p, ec] = std::from_chars(first, last, d);
    if (ec == std::errc::result_out_of_range) {
      // Underflow reads as zero; overflow has no JSON value we could write back.
      std::string text(first, last);
      d = std::strtod(text.c_str(), nullptr);
      if (std::isinf(d)) {
        pos_ = start;
        return FailB("number out of range");
      }
    } else if (ec != std::errc() || p != last) {
      pos_ = start;
      return FailB("invalid number");
    }
    out = Json(d);
    return true;
  }

  bool Hex4(uint32_t& out) {
    if (s_.size() - pos_ < 4) return FailB("short \\u escape");
    out = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      out <<= 4;
      if (c >= '0' && c <= '9') out |= c - '0';
      else if (c >= 'a' && c <= 'f') out |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') out |= c - 'A' + 10;
      else return FailB("bad hex digit in \\u escape");
    }
    return true;
  }

  static void AppendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  bool Escape(std::string& out) {
    ++pos_;  // '\'
    if (AtEnd()) return FailB("unterminated string");
    char c = s_[pos_++];
    switch (c) {
      case '"': out += '"'; return true;
      case '\\': out += '\\'; return true;
      case '/': out += '/'; return true;
      case 'b': out += '\b'; return true;
      case 'f': out += '\f'; return true;
      case 'n': out += '\n'; return true;
      case 'r': out += '\r'; return true;
      case 't': out += '\t'; return true;
      case 'u': break;
      default: --pos_; return FailB("invalid escape");
    }
    uint32_t cp = 0;
    if (!Hex4(cp)) return false;
    if (cp >= 0xdc00 && cp <= 0xdfff) return FailB("lone low surrogate");
    if (cp >= 0xd800 && cp <= 0xdbff) {
      if (s_.substr(pos_, 2) != "\\u") return FailB("high surrogate without a low one");
      pos_ += 2;
      uint32_t lo = 0;
      if (!Hex4(lo)) return false;
      if (lo < 0xdc00 || lo > 0xdfff) return FailB("high surrogate without a low one");
      cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    AppendUtf8(out, cp);
    return true;
  }

  // One UTF-8 sequence of 2 to 4 bytes, checked for overlong forms,
  // surrogates and the upper limit; copied to `out`.
  bool Utf8(std::string& out) {
    auto b0 = static_cast<unsigned char>(s_[pos_]);
    int n;
    uint32_t cp, min;
    if (b0 >= 0xc2 && b0 <= 0xdf) n = 1, cp = b0 & 0x1f, min = 0x80;
    else if (b0 >= 0xe0 && b0 <= 0xef) n = 2, cp = b0 & 0x0f, min = 0x800;
    else if (b0 >= 0xf0 && b0 <= 0xf4) n = 3, cp = b0 & 0x07, min = 0x10000;
    else return FailB("invalid UTF-8");
    if (s_.size() - pos_ <= static_cast<size_t>(n)) return FailB("invalid UTF-8");
    for (int i = 1; i <= n; ++i) {
      auto b = static_cast<unsigned char>(s_[pos_ + i]);
      if ((b & 0xc0) != 0x80) return FailB("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return FailB("invalid UTF-8");
    out.append(s_.substr(pos_, n + 1));
    pos_ += n + 1;
    return true;
  }

  bool String(std::string& out) {
    ++pos_;  // '"'
    for (;;) {
      if (AtEnd()) return FailB("unterminated string");
      auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c == '\\') {
        if (!Escape(out)) return false;
      } else if (c < 0x20) {
        return FailB("control character in a string");
      } else if (c < 0x80) {
        out += static_cast<char>(c);
        ++pos_;
      } else if (!Utf8(out)) {
        return false;
      }
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  Status error_;
};

}  // namespace

Result<Json> Json::Parse(std::string_view text) { return Parser(text).Run(); }

}  // namespace tempfs
