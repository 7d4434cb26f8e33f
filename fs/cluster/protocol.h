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
//                               but the last is full), then 32-byte
//                               HMAC(secret, nonce || "TFSD" || request body ||
//                                    u64 file offset of the frame || u64 frame length || the bytes)
// The response MACs bind every answer to the connection (nonce) and to the
// request it answers (its body, seq included), so a changed, replayed or
// misplaced byte fails its frame's MAC. A client hands a frame's bytes on
// only once its MAC checked out; readers never see unchecked bytes.
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
// One MAC per MiB: the check costs a few percent of a remote read (see the
// README's benchmarks), and a reader waits for at most one frame.
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

// The response MACs (see the framing above). `request_body` is the 48-byte
// body of the request answered.
struct ResponseKey {
  std::string_view secret;
  std::string_view nonce;
  std::string_view request_body;
};
// The head, its MAC appended (kResponseSize bytes).
std::string EncodeResponse(const ResponseKey& k, uint32_t status, uint64_t length);
// Checks a head (kResponseSize bytes); false if its MAC does not match.
bool DecodeResponse(const ResponseKey& k, std::string_view head, uint32_t* status, uint64_t* length);
Mac FrameMac(const ResponseKey& k, uint64_t offset, std::string_view bytes);

}  // namespace tempfs
