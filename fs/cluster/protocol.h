// The peer protocol, version 2. One TCP connection carries any number of
// requests, one at a time (integers little-endian):
//   server -> client  hello:    "TFSP" u32 version, 16-byte nonce
//   client -> server  request:  u32 magic "TFSR", u32 node, u64 ino,
//                               u64 version, u64 offset, u64 length, u64 seq,
//                               32-byte HMAC-SHA256(secret, nonce || the 48 bytes before)
//   server -> client  response: u32 status (0 or errno), u32 0, u64 length,
//                               32-byte HMAC(secret, nonce || "TFSH" || request body || the 16 bytes before),
//                               then `length` bytes of the file in frames:
//   frame:                      up to kFrameSize bytes of the file (every frame
//                               but the last is full), then a 16-byte
//                               AES-256-GMAC tag of those bytes under the
//                               connection's frame key
//                                 HMAC(secret, nonce || "TFSK")
//                               with the 12-byte IV
//                                 u64 seq of the request || u32 (file offset of the frame / kFrameSize)
// The head's MAC binds the answer to the connection (nonce) and to the
// request it answers (its body, seq included); a frame's tag binds its
// bytes, and their number, to the connection (key), the request (seq) and
// the frame's place (IV). So a changed, replayed, cut or misplaced frame
// fails its check. The IV is never used twice under a key: seq grows on a
// connection and frames of one response have distinct offsets / kFrameSize.
// A client hands a frame's bytes on only once its tag checked out; readers
// never see unchecked bytes. GMAC rather than HMAC-SHA256 for the bulk: it
// costs a quarter of the CPU (see the README's benchmarks).
// A request with magic "TFSA" instead (adopt, same layout, offset and length
// 0) asks the server's node to take over the data of `ino` at `version`
// from the asking node, which owns it (drain). It is answered at once with
// length 0; the server copies the data in the background and then records
// itself as the owner.
// A request names an inode and the version wanted, never a path. seq must
// grow on the connection. A request that fails authentication gets no answer:
// the server logs it and closes the connection. The first request must arrive
// whole within kAuthDeadline of the connection's start, or the server closes
// it: connections that never authenticate cannot hold the server's room.
//
// Version 1 had no response MACs (the response head alone, then the bytes);
// a v1 peer and a v2 peer refuse each other at the hello.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "cluster/auth.h"
#include "meta/types.h"

namespace tempfs {

constexpr uint32_t kHelloMagic = 0x50534654;    // "TFSP"
constexpr uint32_t kRequestMagic = 0x52534654;  // "TFSR"
constexpr uint32_t kAdoptMagic = 0x41534654;    // "TFSA"
constexpr uint32_t kProtocolVersion = 2;
constexpr size_t kNonceSize = 16;
constexpr size_t kHelloSize = 8 + kNonceSize;
constexpr size_t kRequestBody = 48;
constexpr size_t kMacSize = 32;
constexpr size_t kRequestSize = kRequestBody + kMacSize;
constexpr size_t kResponseHead = 16;
constexpr size_t kResponseSize = kResponseHead + kMacSize;
constexpr size_t kTagSize = 16;
// One tag per MiB: few checks per range, and a reader waits for at most one
// frame more than it would without them.
constexpr size_t kFrameSize = 1 << 20;
constexpr std::chrono::seconds kAuthDeadline{3};

struct PeerRequest {
  enum class Op { kRead, kAdopt };
  Op op = Op::kRead;
  uint32_t node = 0;  // the asking node
  Ino ino = 0;
  uint64_t version = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t seq = 0;
};

std::string EncodeRequestBody(const PeerRequest& r);
bool DecodeRequestBody(const std::string& body, PeerRequest* r);

// A connection's frame key (32 bytes): HMAC(secret, nonce || "TFSK").
std::string FrameKey(std::string_view secret, std::string_view nonce);

// What the response MACs of one request are made with (see the framing
// above). `request_body` is the 48-byte body of the request answered.
struct ResponseKey {
  std::string_view secret;
  std::string_view nonce;
  std::string_view frame_key;  // FrameKey(secret, nonce)
  std::string_view request_body;
};
// The head, its MAC appended (kResponseSize bytes).
std::string EncodeResponse(const ResponseKey& k, uint32_t status, uint64_t length);
// Checks a head (kResponseSize bytes); false if its MAC does not match.
bool DecodeResponse(const ResponseKey& k, std::string_view head, uint32_t* status, uint64_t* length);
// The tag of the frame at file offset `offset` holding `bytes`; false if it
// could not be computed.
bool FrameTag(const ResponseKey& k, uint64_t offset, std::string_view bytes, Tag* out);

}  // namespace tempfs
