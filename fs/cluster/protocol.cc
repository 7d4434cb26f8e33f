#include "cluster/protocol.h"

#include "meta/codec.h"

namespace tempfs {
namespace {

constexpr std::string_view kHeadLabel = "TFSH";
constexpr std::string_view kFrameKeyLabel = "TFSK";

Mac HeadMac(const ResponseKey& k, std::string_view head) {
  return MacBuilder(k.secret).Add(k.nonce).Add(kHeadLabel).Add(k.request_body).Add(head).Finish();
}

std::string_view AsView(const Mac& m) { return {reinterpret_cast<const char*>(m.data()), m.size()}; }

}  // namespace

std::string EncodeRequestBody(const PeerRequest& r) {
  Encoder e;
  e.U32(r.op == PeerRequest::Op::kAdopt ? kAdoptMagic : kRequestMagic);
  e.U32(r.node);
  e.U64(r.ino);
  e.U64(r.version);
  e.U64(r.offset);
  e.U64(r.length);
  e.U64(r.seq);
  return std::move(e.buffer());
}

bool DecodeRequestBody(const std::string& body, PeerRequest* r) {
  Decoder d(body);
  uint32_t magic = d.U32();
  if (magic != kRequestMagic && magic != kAdoptMagic) return false;
  r->op = magic == kAdoptMagic ? PeerRequest::Op::kAdopt : PeerRequest::Op::kRead;
  r->node = d.U32();
  r->ino = d.U64();
  r->version = d.U64();
  r->offset = d.U64();
  r->length = d.U64();
  r->seq = d.U64();
  return !d.failed() && d.empty();
}

std::string EncodeResponse(const ResponseKey& k, uint32_t status, uint64_t length) {
  Encoder e;
  e.U32(status);
  e.U32(0);
  e.U64(length);
  std::string out = std::move(e.buffer());
  out.append(AsView(HeadMac(k, out)));
  return out;
}

bool DecodeResponse(const ResponseKey& k, std::string_view head, uint32_t* status, uint64_t* length) {
  if (head.size() != kResponseSize) return false;
  Mac got;
  std::copy(head.begin() + kResponseHead, head.end(), got.begin());
  if (!MacEqual(got, HeadMac(k, head.substr(0, kResponseHead)))) return false;
  Decoder d(head.substr(0, kResponseHead));
  *status = d.U32();
  d.U32();
  *length = d.U64();
  return !d.failed();
}

std::string FrameKey(std::string_view secret, std::string_view nonce) {
  Mac key = MacBuilder(secret).Add(nonce).Add(kFrameKeyLabel).Finish();
  return std::string(AsView(key));
}

bool FrameTag(const ResponseKey& k, uint64_t offset, std::string_view bytes, Tag* out) {
  PeerRequest r;
  if (!DecodeRequestBody(std::string(k.request_body), &r)) return false;
  Encoder iv;
  iv.U64(r.seq);
  iv.U32(static_cast<uint32_t>(offset / kFrameSize));
  return ComputeGmac(k.frame_key, iv.buffer(), bytes, out);
}

}  // namespace tempfs
