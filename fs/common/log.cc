#include "common/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>

namespace tempfs {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
const char* kNames[] = {"debug", "info", "warn", "error"};
}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level; }

void VLogf(LogLevel level, const char* fmt, va_list ap) {
  if (!LogEnabled(level)) return;
  char buf[2048];
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s tempfs[%d]: ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                   tm.tm_sec, ts.tv_nsec / 1000000, kNames[static_cast<int>(level)], getpid());
  int m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
  size_t len = n + (m < 0 ? 0 : static_cast<size_t>(m) < sizeof buf - n - 1 ? m : sizeof buf - n - 2);
  buf[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, buf, len);
  (void)w;
}

void Logf(LogLevel level, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  VLogf(level, fmt, ap);
  va_end(ap);
}

}  // namespace tempfs
