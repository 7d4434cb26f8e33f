#include "cluster/auth.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tempfs {

namespace {

// Fetched once: looking an algorithm up is the costly part of a new context.
EVP_MAC* HmacAlgorithm() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return mac;
}

EVP_MAC* GmacAlgorithm() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "GMAC", nullptr);
  return mac;
}

template <typename A>
bool ConstantTimeEqual(const A& a, const A& b) {
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); i++) diff |= a[i] ^ b[i];
  return diff == 0;
}

}  // namespace

MacBuilder::MacBuilder(std::string_view secret) : ctx_(EVP_MAC_CTX_new(HmacAlgorithm())) {
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), params);
}

MacBuilder::~MacBuilder() { EVP_MAC_CTX_free(ctx_); }

MacBuilder& MacBuilder::Add(std::string_view bytes) {
  EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return *this;
}

Mac MacBuilder::Finish() {
  Mac out{};
  size_t len = 0;
  EVP_MAC_final(ctx_, out.data(), &len, out.size());
  return out;
}

Mac ComputeMac(std::string_view secret, std::string_view nonce, std::string_view message) {
  return MacBuilder(secret).Add(nonce).Add(message).Finish();
}

bool MacEqual(const Mac& a, const Mac& b) { return ConstantTimeEqual(a, b); }
bool TagEqual(const Tag& a, const Tag& b) { return ConstantTimeEqual(a, b); }

bool ComputeGmac(std::string_view key, std::string_view iv, std::string_view data, Tag* out) {
  if (key.size() != 32 || iv.size() != 12 || GmacAlgorithm() == nullptr) return false;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(GmacAlgorithm());
  char cipher[] = "AES-256-GCM";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher, 0),
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_IV, const_cast<char*>(iv.data()), iv.size()),
      OSSL_PARAM_construct_end()};
  size_t len = 0;
  bool ok = ctx != nullptr &&
            EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params) == 1 &&
            EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1 &&
            EVP_MAC_final(ctx, out->data(), &len, out->size()) == 1 && len == out->size();
  EVP_MAC_CTX_free(ctx);
  return ok;
}

Result<std::string> ReadSecretFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("secret file " + path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return Status::FromErrno("secret file " + path);
  }
  if (st.st_mode & 077) {
    close(fd);
    return Status::Err(EPERM, "secret file " + path + " is readable by others (chmod 600 it)");
  }
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) s.append(buf, n);
  close(fd);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (s.size() < 16) return Status::Err(EINVAL, "secret file " + path + " holds fewer than 16 bytes");
  return s;
}

std::string RandomBytes(size_t n) {
  std::string s(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(s.data() + got, n - got, 0);
    if (r > 0) got += r;
  }
  return s;
}

}  // namespace tempfs
