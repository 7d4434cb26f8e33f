// Json: a small JSON value for the admin tool and the control API.
//
// A value is null, bool, int64, double, string, array or object. Objects keep
// their keys in insertion order and hold each key once (Set replaces in
// place; when parsing, the last of duplicate keys wins at the first one's
// place). Integers that fit in int64 stay integers; other numbers are doubles.
//
// Dump() writes compact JSON (indent -1) or pretty JSON with `indent` spaces a
// level. Strings are written as their bytes (UTF-8 passes through), with
// quote, backslash and control characters escaped (\b \f \n \r \t, the other
// controls as \u00XX). Doubles are written so that they read back to the same
// value and as doubles ("1.0", not "1"); NaN and infinities are written as
// null, which JSON has no other way to say.
//
// Parse() takes strict RFC 8259 text: one value, optional surrounding
// whitespace, valid UTF-8, \u escapes with surrogate pairs turned into UTF-8,
// lone surrogates refused, nesting at most kMaxDepth arrays/objects deep.
// Errors are EINVAL with a message naming the byte offset.
//
// Readers never fail: asking for the wrong type gives an empty answer (0,
// false, "", no items). A Json is a plain value: copyable, not thread-safe.
#pragma once

#include <concepts>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/status.h"

namespace tempfs {

class Json {
 public:
  enum class Type { kNull, kBool, kInt, kDouble, kString, kArray, kObject };
  using List = std::vector<Json>;
  using Members = std::vector<std::pair<std::string, Json>>;
  static constexpr int kMaxDepth = 64;

  Json() = default;  // null
  Json(std::nullptr_t) {}  // NOLINT: implicit by design
  Json(bool b) : v_(b) {}  // NOLINT
  // Any integer type; unsigned values above INT64_MAX become doubles.
  template <std::integral T>
    requires(!std::same_as<T, bool>)
  Json(T n) {  // NOLINT
    if constexpr (std::is_unsigned_v<T>) {
      if (static_cast<uint64_t>(n) > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        v_ = static_cast<double>(n);
        return;
      }
    }
    v_ = static_cast<int64_t>(n);
  }
  Json(double d) : v_(d) {}  // NOLINT
  Json(const char* s) : v_(std::string(s)) {}  // NOLINT
  Json(std::string s) : v_(std::move(s)) {}  // NOLINT
  Json(std::string_view s) : v_(std::string(s)) {}  // NOLINT

  static Json Object() { return Json(Members{}); }
  static Json Array() { return Json(List{}); }

  // Makes a null value an object (array) first; on any other non-object
  // (non-array) value the old content is dropped. Return *this for chaining.
  Json& Set(std::string key, Json value) &;
  Json&& Set(std::string key, Json value) && { return std::move(Set(std::move(key), std::move(value))); }
  Json& Push(Json value) &;
  Json&& Push(Json value) && { return std::move(Push(std::move(value))); }

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_null() const { return type() == Type::kNull; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_int() const { return type() == Type::kInt; }
  bool is_double() const { return type() == Type::kDouble; }
  bool is_number() const { return is_int() || is_double(); }
  bool is_string() const { return type() == Type::kString; }
  bool is_array() const { return type() == Type::kArray; }
  bool is_object() const { return type() == Type::kObject; }

  bool as_bool() const;
  // A double is truncated toward zero when it fits in int64; else 0.
  int64_t as_int() const;
  double as_double() const;
  const std::string& as_string() const;
  const List& items() const;
  const Members& members() const;
  // Elements of an array or members of an object; 0 for anything else.
  size_t size() const;
  // The value of `key` in an object, or nullptr.
  const Json* Find(std::string_view key) const;

  std::string Dump(int indent = -1) const;
  static Result<Json> Parse(std::string_view text);

  // Same type and same value; objects compare in order.
  friend bool operator==(const Json& a, const Json& b);

 private:
  explicit Json(List a) : v_(std::move(a)) {}
  explicit Json(Members m) : v_(std::move(m)) {}
  void DumpTo(std::string& out, int indent, int level) const;

  std::variant<std::monostate, bool, int64_t, double, std::string, List, Members> v_;
};

}  // namespace tempfs
