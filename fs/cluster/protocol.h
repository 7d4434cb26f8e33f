// The peer protocol, version 1. One TCP connection carries any number of
// requests, one at a time:
//   server -> client  hello:    "TFSP" u32 version, 16-byte nonce
//   client -> server  request:  u32 magic "TFSR", u32 node, u64 ino,
//                               u64 version, u64 offset, u64 length, u64 seq,
//                               32-byte HMAC-SHA256(secret, nonce || the 48 bytes before)
//   server -> client  response: u32 status (0 or errno), u32 0, u64 length,
//                               then `length` bytes of the file
// A request with magic "TFSA" instead (adopt, same layout, offset and length
// 0) asks the server's node to take over the data of `ino` at `version`
// from the asking node, which owns it (drain). It is answered at once with
// length 0; the server copies the data in the background and then records
// itself as the owner.
// A request names an inode and the version wanted, never a path. seq must
// grow on the connection. A request that fails authentication gets no answer:
// the server logs it and closes the connection.
#pragma once

#include <cstdint>
#include <string>

#include "meta/types.h"

namespace tempfs {

constexpr uint32_t kHelloMagic = 0x50534654;    // "TFSP"
constexpr uint32_t kRequestMagic = 0x52534654;  // "TFSR"
constexpr uint32_t kAdoptMagic = 0x41534654;    // "TFSA"
constexpr uint32_t kProtocolVersion = 1;
constexpr size_t kNonceSize = 16;
constexpr size_t kHelloSize = 8 + kNonceSize;
constexpr size_t kRequestBody = 48;
constexpr size_t kRequestSize = kRequestBody + 32;
constexpr size_t kResponseSize = 16;

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

}  // namespace tempfs
