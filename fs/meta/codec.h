// Little-endian binary encoding of records (journal, snapshot, and later the
// wire formats). Decoder never reads past its input: a short input sets
// failed() and yields zeros.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace tempfs {

class Encoder {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Raw(&v, sizeof v); }
  void U64(uint64_t v) { Raw(&v, sizeof v); }
  void I64(int64_t v) { Raw(&v, sizeof v); }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string& buffer() { return out_; }
  size_t size() const { return out_.size(); }

 private:
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}
  uint8_t U8() { uint8_t v = 0; Raw(&v, 1); return v; }
  uint32_t U32() { uint32_t v = 0; Raw(&v, sizeof v); return v; }
  uint64_t U64() { uint64_t v = 0; Raw(&v, sizeof v); return v; }
  int64_t I64() { int64_t v = 0; Raw(&v, sizeof v); return v; }
  std::string_view Str() {
    uint32_t n = U32();
    if (failed_ || n > in_.size()) { failed_ = true; return {}; }
    std::string_view s = in_.substr(0, n);
    in_.remove_prefix(n);
    return s;
  }
  bool empty() const { return in_.empty(); }
  bool failed() const { return failed_; }

 private:
  void Raw(void* p, size_t n) {
    if (failed_ || n > in_.size()) { failed_ = true; return; }
    std::memcpy(p, in_.data(), n);
    in_.remove_prefix(n);
  }
  std::string_view in_;
  bool failed_ = false;
};

}  // namespace tempfs
