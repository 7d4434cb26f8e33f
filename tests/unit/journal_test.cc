#include "meta/journal.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tempfs {
namespace {

TEST(JournalFraming, ReplaysValidPrefixAndStopsAtTornTail) {
  std::string data = FrameRecord("one") + FrameRecord("two");
  std::string third = FrameRecord("three");
  data += third.substr(0, third.size() - 2);  // torn write
  std::vector<std::string> seen;
  size_t valid = ForEachRecord(data, [&](std::string_view r) { seen.emplace_back(r); });
  EXPECT_EQ(seen, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(valid, FrameRecord("one").size() + FrameRecord("two").size());
}

TEST(JournalFraming, RejectsFlippedByte) {
  std::string data = FrameRecord("payload");
  data[data.size() - 1] ^= 1;
  int n = 0;
  EXPECT_EQ(ForEachRecord(data, [&](std::string_view) { n++; }), 0u);
  EXPECT_EQ(n, 0);
}

}  // namespace
}  // namespace tempfs
