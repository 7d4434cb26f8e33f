// The peer protocol's response MACs (protocol.h): a head or a frame checks
// out only with the same secret, connection nonce, request (its seq too),
// offset and bytes; any changed byte fails.
#include "cluster/protocol.h"

#include <string>

#include <gtest/gtest.h>

#include "cluster/auth.h"

namespace tempfs {
namespace {

std::string Body(uint64_t seq) {
  PeerRequest r;
  r.node = 2;
  r.ino = 42;
  r.version = 7;
  r.offset = 4 << 20;
  r.length = 1 << 20;
  r.seq = seq;
  return EncodeRequestBody(r);
}

TEST(PeerProtocolTest, MacBuilderIsHmacSha256) {
  // RFC 4231, test case 2, fed in pieces and whole.
  const Mac rfc = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
                   0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
  EXPECT_TRUE(MacEqual(MacBuilder("Jefe").Add("what do ya ").Add("").Add("want for nothing?").Finish(), rfc));
  EXPECT_TRUE(MacEqual(ComputeMac("Jefe", "what do ya", " want for nothing?"), rfc));
  EXPECT_FALSE(MacEqual(ComputeMac("Jefe", "what do ya", " want for nothing!"), rfc));
}

TEST(PeerProtocolTest, ResponseHeadChecksOutOnlyUnchanged) {
  const std::string secret(32, 's'), nonce(kNonceSize, 'n'), body = Body(5);
  const ResponseKey key{secret, nonce, body};
  const std::string head = EncodeResponse(key, 0, 123456);
  ASSERT_EQ(head.size(), kResponseSize);
  uint32_t status = 1;
  uint64_t length = 0;
  ASSERT_TRUE(DecodeResponse(key, head, &status, &length));
  EXPECT_EQ(status, 0u);
  EXPECT_EQ(length, 123456u);
  for (size_t i = 0; i < head.size(); i++) {
    std::string bad = head;
    bad[i] ^= 1;
    EXPECT_FALSE(DecodeResponse(key, bad, &status, &length)) << "byte " << i << " changed";
  }
  const std::string other_body = Body(6), other_nonce(kNonceSize, 'm'), other_secret(32, 't');
  EXPECT_FALSE(DecodeResponse({secret, nonce, other_body}, head, &status, &length)) << "answer to another request";
  EXPECT_FALSE(DecodeResponse({secret, other_nonce, body}, head, &status, &length)) << "another connection";
  EXPECT_FALSE(DecodeResponse({other_secret, nonce, body}, head, &status, &length)) << "another cluster";
  EXPECT_FALSE(DecodeResponse(key, head.substr(0, kResponseSize - 1), &status, &length)) << "short";
}

TEST(PeerProtocolTest, FrameMacCoversRequestOffsetAndBytes) {
  const std::string secret(32, 's'), nonce(kNonceSize, 'n'), body = Body(5), other_body = Body(6);
  const ResponseKey key{secret, nonce, body};
  std::string data(kFrameSize, 'd');
  const Mac mac = FrameMac(key, 4 << 20, data);
  EXPECT_TRUE(MacEqual(mac, FrameMac(key, 4 << 20, data)));
  EXPECT_FALSE(MacEqual(mac, FrameMac(key, (4 << 20) + kFrameSize, data))) << "a frame moved to another offset";
  EXPECT_FALSE(MacEqual(mac, FrameMac({secret, nonce, other_body}, 4 << 20, data))) << "a frame of another request";
  EXPECT_FALSE(MacEqual(mac, FrameMac(key, 4 << 20, std::string_view(data).substr(0, kFrameSize - 1))))
      << "a frame cut short";
  for (size_t i : {size_t{0}, kFrameSize / 2, kFrameSize - 1}) {
    std::string bad = data;
    bad[i] ^= 1;
    EXPECT_FALSE(MacEqual(mac, FrameMac(key, 4 << 20, bad))) << "byte " << i << " flipped";
  }
}

}  // namespace
}  // namespace tempfs
