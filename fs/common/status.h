// Status and Result<T>: the error currency of tempfs.
//
// Errno is what the data path speaks (the kernel wants an errno back), so a
// Status is an errno plus an optional human message for logs and CLIs. Both
// types are cheap to copy and must be checked ([[nodiscard]]).
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace tempfs {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Err(int err, std::string msg = {}) { return Status(err, std::move(msg)); }
  // Takes errno as it is right now.
  static Status FromErrno(std::string msg = {}) { return Status(errno, std::move(msg)); }

  bool ok() const { return err_ == 0; }
  int err() const { return err_; }
  const std::string& message() const { return msg_; }
  // Lets Status and Result<T> be handled alike by TEMPFS_RETURN_IF_ERROR.
  const Status& status() const { return *this; }
  // "message: strerror" or just strerror.
  std::string ToString() const {
    if (ok()) return "ok";
    std::string s = msg_;
    if (!s.empty()) s += ": ";
    return s + std::strerror(err_);
  }

 private:
  Status(int err, std::string msg) : err_(err == 0 ? EIO : err), msg_(std::move(msg)) {}
  int err_ = 0;
  std::string msg_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: must not be ok
  static Result Err(int err, std::string msg = {}) { return Result(Status::Err(err, std::move(msg))); }

  bool ok() const { return std::holds_alternative<T>(v_); }
  int err() const { return ok() ? 0 : std::get<Status>(v_).err(); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace tempfs

// Returns the status of an expression (Status or Result) from the enclosing
// function when it is an error.
#define TEMPFS_RETURN_IF_ERROR(expr)            \
  do {                                          \
    auto _st = (expr);                          \
    if (!_st.ok()) return _st.status();       \
  } while (0)
