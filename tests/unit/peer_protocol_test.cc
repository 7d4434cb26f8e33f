// The peer protocol's response MACs (protocol.h): a head or a frame checks
// out only with the same secret, connection, request (its seq too), place
// and bytes; any changed byte fails.
#include <gtest/gtest.h>

#include <string>

#include "cluster/auth.h"
#include "cluster/protocol.h"

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
  const std::string frame_key = FrameKey(secret, nonce);
  const ResponseKey key{secret, nonce, frame_key, body};
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
  EXPECT_FALSE(DecodeResponse({secret, nonce, frame_key, other_body}, head, &status, &length))
      << "answer to another request";
  EXPECT_FALSE(DecodeResponse({secret, other_nonce, frame_key, body}, head, &status, &length)) << "another connection";
  EXPECT_FALSE(DecodeResponse({other_secret, nonce, frame_key, body}, head, &status, &length)) << "another cluster";
  EXPECT_FALSE(DecodeResponse(key, head.substr(0, kResponseSize - 1), &status, &length)) << "short";
}

// A frame's tag under `key` (fails the test if it cannot be computed).
Tag TagOf(const ResponseKey& key, uint64_t offset, std::string_view bytes) {
  Tag t{};
  EXPECT_TRUE(FrameTag(key, offset, bytes, &t));
  return t;
}

TEST(PeerProtocolTest, FrameTagCoversConnectionRequestPlaceAndBytes) {
  const std::string secret(32, 's'), nonce(kNonceSize, 'n'), body = Body(5), other_body = Body(6);
  const std::string frame_key = FrameKey(secret, nonce), other_key = FrameKey(secret, std::string(kNonceSize, 'm'));
  ASSERT_EQ(frame_key.size(), 32u);
  ASSERT_NE(frame_key, other_key);
  const ResponseKey key{secret, nonce, frame_key, body};
  std::string data(kFrameSize, 'd');
  const Tag tag = TagOf(key, 4 << 20, data);
  EXPECT_TRUE(TagEqual(tag, TagOf(key, 4 << 20, data)));
  EXPECT_FALSE(TagEqual(tag, TagOf(key, (4 << 20) + kFrameSize, data))) << "a frame moved to another place";
  EXPECT_FALSE(TagEqual(tag, TagOf({secret, nonce, frame_key, other_body}, 4 << 20, data)))
      << "a frame of another request (seq)";
  EXPECT_FALSE(TagEqual(tag, TagOf({secret, nonce, other_key, body}, 4 << 20, data))) << "another connection";
  EXPECT_FALSE(TagEqual(tag, TagOf(key, 4 << 20, std::string_view(data).substr(0, kFrameSize - 1))))
      << "a frame cut short";
  for (size_t i : {size_t{0}, kFrameSize / 2, kFrameSize - 1}) {
    std::string bad = data;
    bad[i] ^= 1;
    EXPECT_FALSE(TagEqual(tag, TagOf(key, 4 << 20, bad))) << "byte " << i << " flipped";
  }
}

// NIST GCM test vector (AES-256, 96-bit IV, no plaintext, AAD only): the
// tag is GMAC's.
TEST(PeerProtocolTest, GmacIsAes256Gmac) {
  auto bytes = [](const char* hex) {
    std::string s;
    for (size_t i = 0; hex[i] != 0 && hex[i + 1] != 0; i += 2)
      s.push_back(static_cast<char>(std::stoi(std::string(hex + i, 2), nullptr, 16)));
    return s;
  };
  const std::string key = bytes("78dc4e0aaf52d935c3c01eea57428f00ca1fd475f5da86a49c8dd73d68c8e223");
  const std::string iv = bytes("d79cf22d504cc793c3fb6c8a");
  const std::string aad = bytes("b96baa8c1c75a671bfb2d08d06be5f36");
  const std::string want = bytes("3e5d486aa2e30b22e040b85723a06e76");
  Tag tag{};
  ASSERT_TRUE(ComputeGmac(key, iv, aad, &tag));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(tag.data()), tag.size()), want);
  EXPECT_FALSE(ComputeGmac(key.substr(1), iv, aad, &tag)) << "a short key";
}

}  // namespace
}  // namespace tempfs
