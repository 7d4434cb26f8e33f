#include "cluster/protocol.h"

#include "meta/codec.h"

namespace tempfs {

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

}  // namespace tempfs
