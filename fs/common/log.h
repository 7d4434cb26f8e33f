// Logging: one line per event, to stderr (the daemon points stderr at its log
// file once it has detached). Thread-safe: each line is a single write().
#pragma once

#include <cstdarg>

namespace tempfs {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void Logf(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void VLogf(LogLevel level, const char* fmt, va_list ap);

}  // namespace tempfs

#define TLOG_DEBUG(...) \
  do { if (::tempfs::LogEnabled(::tempfs::LogLevel::kDebug)) ::tempfs::Logf(::tempfs::LogLevel::kDebug, __VA_ARGS__); } while (0)
#define TLOG_INFO(...) ::tempfs::Logf(::tempfs::LogLevel::kInfo, __VA_ARGS__)
#define TLOG_WARN(...) ::tempfs::Logf(::tempfs::LogLevel::kWarn, __VA_ARGS__)
#define TLOG_ERROR(...) ::tempfs::Logf(::tempfs::LogLevel::kError, __VA_ARGS__)
