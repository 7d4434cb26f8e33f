// Turning the plugin's errors (Status: an errno and a message) into the gRPC
// status codes the CSI spec names, in one place:
//   EINVAL -> INVALID_ARGUMENT   (missing or malformed field)
//   ENOENT -> NOT_FOUND          (no such volume at that path)
//   EEXIST -> ALREADY_EXISTS     (target published with other arguments)
//   ENOTCONN, EAGAIN -> UNAVAILABLE (the node's tempfs mount is not serving)
//   ENOTSUP -> FAILED_PRECONDITION
//   anything else -> INTERNAL
#pragma once

#include <grpcpp/support/status.h>

#include "common/status.h"

namespace tempfs::csi {

grpc::Status ToGrpc(const Status& status);

}  // namespace tempfs::csi
