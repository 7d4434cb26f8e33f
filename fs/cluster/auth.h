// Cluster authentication: every peer request carries an HMAC-SHA256 of its
// fields under the cluster secret, keyed to a nonce the server chose for the
// connection and a sequence number, so a request can be neither forged nor
// replayed. Responses carry MACs the same way (see protocol.h), so bytes
// changed on the way are never taken for file content.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include <openssl/types.h>

#include "common/status.h"

namespace tempfs {

using Mac = std::array<unsigned char, 32>;
using Tag = std::array<unsigned char, 16>;

Mac ComputeMac(std::string_view secret, std::string_view nonce, std::string_view message);

// An HMAC-SHA256 fed in pieces, so a message made of several fields is not
// copied into one buffer first. Not thread-safe; one message per object.
class MacBuilder {
 public:
  explicit MacBuilder(std::string_view secret);
  ~MacBuilder();
  MacBuilder(const MacBuilder&) = delete;
  MacBuilder& operator=(const MacBuilder&) = delete;
  MacBuilder& Add(std::string_view bytes);
  Mac Finish();

 private:
  EVP_MAC_CTX* ctx_;
};
// Constant-time comparisons.
bool MacEqual(const Mac& a, const Mac& b);
bool TagEqual(const Tag& a, const Tag& b);

// AES-256-GMAC of `data` under a 32-byte `key` and a 12-byte `iv`: the MAC
// for bulk data, about 4 times as fast as HMAC-SHA256 here (AES-NI and
// carry-less multiply). A key must never see the same IV twice: the peer
// protocol keys it per connection and builds the IV from seq and frame.
// False if it could not be computed (then there is no tag to trust).
bool ComputeGmac(std::string_view key, std::string_view iv, std::string_view data, Tag* out);
// Reads the secret file: non-empty, not readable by group or others; a
// trailing newline is not part of the secret.
Result<std::string> ReadSecretFile(const std::string& path);
std::string RandomBytes(size_t n);

}  // namespace tempfs
