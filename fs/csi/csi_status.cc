#include "csi/csi_status.h"

namespace tempfs::csi {

grpc::Status ToGrpc(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  grpc::StatusCode code;
  switch (status.err()) {
    case EINVAL: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case ENOENT: code = grpc::StatusCode::NOT_FOUND; break;
    case EEXIST: code = grpc::StatusCode::ALREADY_EXISTS; break;
    case ENOTCONN:
    case EAGAIN: code = grpc::StatusCode::UNAVAILABLE; break;
    case ENOTSUP: code = grpc::StatusCode::FAILED_PRECONDITION; break;
    default: code = grpc::StatusCode::INTERNAL; break;
  }
  // Invalid arguments carry their own explanation; the rest keep strerror.
  std::string msg = (code == grpc::StatusCode::INVALID_ARGUMENT && !status.message().empty())
                        ? status.message()
                        : status.ToString();
  return grpc::Status(code, msg);
}

}  // namespace tempfs::csi
