#include "csi/csi_status.h"

namespace tempfs::csi {
namespace {

grpc::StatusCode CodeFor(int err) {
  switch (err) {
    case EINVAL:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case ENOENT:
      return grpc::StatusCode::NOT_FOUND;
    case EEXIST:
      return grpc::StatusCode::ALREADY_EXISTS;
    case ENOTCONN:
    case EAGAIN:
      return grpc::StatusCode::UNAVAILABLE;
    case ENOTSUP:
      return grpc::StatusCode::FAILED_PRECONDITION;
    default:
      return grpc::StatusCode::INTERNAL;
  }
}

}  // namespace

grpc::Status ToGrpc(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const grpc::StatusCode code = CodeFor(status.err());
  // Invalid arguments carry their own explanation; the rest keep strerror.
  const bool own_words = code == grpc::StatusCode::INVALID_ARGUMENT && !status.message().empty();
  return grpc::Status(code, own_words ? status.message() : status.ToString());
}

}  // namespace tempfs::csi
