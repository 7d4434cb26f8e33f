#include "cluster/protocol.h"

#include "meta/codec.h"

namespace tempfs {

std::string EncodeRequestBody(const PeerRequest& r) {
  Encoder e;
  e.U32(kRequestMagic);
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
  if (d.U32() != kRequestMagic) return false;
  r->node = d.U32();
  r->ino = d.U64();
  r->version = d.U64();
  r->offset = d.U64();
  r->length = d.U64();
  r->seq = d.U64();
  return !d.failed() && d.empty();
}

}  // namespace tempfs
