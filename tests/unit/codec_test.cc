// Encoder/Decoder: round trips, byte order, and short input (failed(), zeros,
// never a read past the end: inputs are placed right before a PROT_NONE page).
#include "meta/codec.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace tempfs {
namespace {

// A copy of `data` that ends exactly where an inaccessible page begins, so
// that reading one byte too far crashes the test instead of passing silently.
class GuardedBuffer {
 public:
  explicit GuardedBuffer(std::string_view data) {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_t pages = (data.size() + page_ - 1) / page_ + 1;
    len_ = pages * page_;
    void* p = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      ADD_FAILURE() << "mmap: " << strerror(errno);
      return;
    }
    base_ = static_cast<char*>(p);
    char* guard = base_ + len_ - page_;
    if (mprotect(guard, page_, PROT_NONE) != 0) ADD_FAILURE() << "mprotect: " << strerror(errno);
    char* start = guard - data.size();
    if (!data.empty()) std::memcpy(start, data.data(), data.size());
    view_ = std::string_view(start, data.size());
  }
  ~GuardedBuffer() {
    if (base_ != nullptr) munmap(base_, len_);
  }
  std::string_view view() const { return view_; }

 private:
  size_t page_ = 0, len_ = 0;
  char* base_ = nullptr;
  std::string_view view_;
};

std::string Sample() {
  Encoder e;
  e.U8(0xab);
  e.U32(0xdeadbeef);
  e.U64(0x0123456789abcdefull);
  e.I64(-42);
  e.Str("hello");
  e.Str(std::string("\0bin\xff", 5));
  e.Str("");
  e.U8(7);
  return e.buffer();
}

TEST(Codec, RoundTrip) {
  Encoder e;
  e.U8(0);
  e.U8(255);
  e.U32(0);
  e.U32(std::numeric_limits<uint32_t>::max());
  e.U64(std::numeric_limits<uint64_t>::max());
  e.U64(1);
  e.I64(std::numeric_limits<int64_t>::min());
  e.I64(std::numeric_limits<int64_t>::max());
  e.I64(-1);
  std::string big(100000, 'z');
  big[500] = '\0';
  e.Str(big);
  e.Str("");
  e.Str(std::string("a\0b", 3));
  EXPECT_EQ(e.size(), e.buffer().size());

  GuardedBuffer buf(e.buffer());
  Decoder d(buf.view());
  EXPECT_EQ(d.U8(), 0);
  EXPECT_EQ(d.U8(), 255);
  EXPECT_EQ(d.U32(), 0u);
  EXPECT_EQ(d.U32(), std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(d.U64(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(d.U64(), 1u);
  EXPECT_EQ(d.I64(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(d.I64(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(d.I64(), -1);
  EXPECT_EQ(d.Str(), big);
  EXPECT_EQ(d.Str(), "");
  EXPECT_EQ(d.Str(), std::string_view("a\0b", 3));
  EXPECT_TRUE(d.empty());
  EXPECT_FALSE(d.failed());
}

TEST(Codec, LittleEndianLayout) {
  Encoder e;
  e.U32(0x01020304);
  e.U64(0x1122334455667788ull);
  e.Str("xy");
  EXPECT_EQ(e.buffer(), std::string("\x04\x03\x02\x01"
                                    "\x88\x77\x66\x55\x44\x33\x22\x11"
                                    "\x02\x00\x00\x00"
                                    "xy",
                                    4 + 8 + 4 + 2));
  EXPECT_EQ(e.size(), 18u);
}

TEST(Codec, EmptyInputFailsWithZeros) {
  GuardedBuffer buf("");
  Decoder d(buf.view());
  EXPECT_TRUE(d.empty());
  EXPECT_FALSE(d.failed());
  EXPECT_EQ(d.U8(), 0);
  EXPECT_TRUE(d.failed());
  EXPECT_EQ(d.U32(), 0u);
  EXPECT_EQ(d.U64(), 0u);
  EXPECT_EQ(d.I64(), 0);
  EXPECT_EQ(d.Str(), "");
  EXPECT_TRUE(d.failed());
}

TEST(Codec, ShortFixedWidthValue) {
  GuardedBuffer buf(std::string("\x01\x02\x03", 3));
  Decoder d(buf.view());
  EXPECT_EQ(d.U32(), 0u) << "a short read yields zero, not a partial value";
  EXPECT_TRUE(d.failed());
  // Once failed, everything is zero even if bytes remain.
  EXPECT_EQ(d.U8(), 0);
  EXPECT_TRUE(d.failed());
}

TEST(Codec, FailureIsSticky) {
  std::string in(5, '\x7f');
  GuardedBuffer buf(in);
  Decoder d(buf.view());
  EXPECT_EQ(d.U64(), 0u);
  EXPECT_TRUE(d.failed());
  EXPECT_EQ(d.U8(), 0) << "bytes remain, but a failed decoder yields zeros";
  EXPECT_EQ(d.U32(), 0u);
}

TEST(Codec, StringLongerThanInput) {
  Encoder e;
  e.U32(10);
  e.buffer() += "short";
  GuardedBuffer buf(e.buffer());
  Decoder d(buf.view());
  EXPECT_EQ(d.Str(), "");
  EXPECT_TRUE(d.failed());

  Encoder huge;
  huge.U32(0xffffffffu);
  huge.buffer() += "abc";
  GuardedBuffer buf2(huge.buffer());
  Decoder d2(buf2.view());
  EXPECT_EQ(d2.Str(), "");
  EXPECT_TRUE(d2.failed());

  // Exactly the remaining bytes is fine.
  Encoder exact;
  exact.Str("abcde");
  GuardedBuffer buf3(exact.buffer());
  Decoder d3(buf3.view());
  EXPECT_EQ(d3.Str(), "abcde");
  EXPECT_FALSE(d3.failed());
  EXPECT_TRUE(d3.empty());
}

// Every prefix of a valid encoding: decoding the full sequence never reads
// past the prefix (the guard page would fault), fails exactly when the prefix
// is short, and what it did decode before failing is right.
TEST(Codec, EveryTruncationIsDetectedWithoutOverread) {
  const std::string full = Sample();
  for (size_t n = 0; n <= full.size(); n++) {
    GuardedBuffer buf(std::string_view(full).substr(0, n));
    Decoder d(buf.view());
    uint8_t a = d.U8();
    uint32_t b = d.U32();
    uint64_t c = d.U64();
    int64_t i = d.I64();
    std::string s1(d.Str());
    std::string s2(d.Str());
    std::string s3(d.Str());
    uint8_t z = d.U8();
    SCOPED_TRACE("prefix " + std::to_string(n) + " of " + std::to_string(full.size()));
    if (n == full.size()) {
      EXPECT_FALSE(d.failed());
      EXPECT_TRUE(d.empty());
      EXPECT_EQ(a, 0xab);
      EXPECT_EQ(b, 0xdeadbeefu);
      EXPECT_EQ(c, 0x0123456789abcdefull);
      EXPECT_EQ(i, -42);
      EXPECT_EQ(s1, "hello");
      EXPECT_EQ(s2, std::string("\0bin\xff", 5));
      EXPECT_EQ(s3, "");
      EXPECT_EQ(z, 7);
    } else {
      EXPECT_TRUE(d.failed());
      EXPECT_EQ(z, 0);
      if (n >= 1) {
        EXPECT_EQ(a, 0xab);
      }
      EXPECT_EQ(b, n >= 5 ? 0xdeadbeefu : 0u);
      if (n < 13) {
        EXPECT_EQ(c, 0u);
      }
      if (n < 21) {
        EXPECT_EQ(i, 0);
      }
      if (n < 30) {
        EXPECT_EQ(s1, "");
      }
    }
  }
}

// Random bytes: decoding never faults and never yields a string reaching
// beyond the input.
TEST(Codec, GarbageInputStaysInBounds) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (int round = 0; round < 2000; round++) {
    size_t n = round % 40;
    std::string in(n, '\0');
    for (char& ch : in) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      ch = static_cast<char>(x);
      if (x % 4 == 0) ch = static_cast<char>(x % 8);  // small lengths now and then
    }
    GuardedBuffer buf(in);
    Decoder d(buf.view());
    while (!d.failed() && !d.empty()) {
      switch (x++ % 5) {
        case 0: d.U8(); break;
        case 1: d.U32(); break;
        case 2: d.U64(); break;
        case 3: d.I64(); break;
        case 4: {
          std::string_view s = d.Str();
          if (!s.empty()) {
            EXPECT_GE(s.data(), buf.view().data());
            EXPECT_LE(s.data() + s.size(), buf.view().data() + buf.view().size());
          }
          break;
        }
      }
    }
  }
}

}  // namespace
}  // namespace tempfs
