// MetricsRegistry: the Prometheus text format line by line, label escaping,
// registration rules, and exact counts under concurrent updates.
#include "common/metrics.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace tempfs {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  EXPECT_TRUE(text.empty() || text.back() == '\n') << "exposition must end with a newline";
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(Metrics, CounterAndGaugeFormat) {
  MetricsRegistry r;
  Counter& lookups = r.AddCounter("tempfs_ops_total", "Operations served.", {{"op", "lookup"}});
  Counter& reads = r.AddCounter("tempfs_ops_total", "Operations served.", {{"op", "read"}});
  Counter& plain = r.AddCounter("tempfs_restarts_total", "Restarts.");
  Gauge& open = r.AddGauge("tempfs_open_files", "Open files.");
  double mounts = 2;
  r.AddGaugeCallback("tempfs_mounts", "Mounted file systems.", {}, [&] { return mounts; });
  lookups.Add();
  lookups.Add(4);
  reads.Add(2);
  open.Set(7);
  open.Add(-2.5);
  mounts = 3;  // read at render time, not at registration

  EXPECT_EQ(Lines(r.RenderPrometheus()), (std::vector<std::string>{
                                             "# HELP tempfs_ops_total Operations served.",
                                             "# TYPE tempfs_ops_total counter",
                                             "tempfs_ops_total{op=\"lookup\"} 5",
                                             "tempfs_ops_total{op=\"read\"} 2",
                                             "# HELP tempfs_restarts_total Restarts.",
                                             "# TYPE tempfs_restarts_total counter",
                                             "tempfs_restarts_total 0",
                                             "# HELP tempfs_open_files Open files.",
                                             "# TYPE tempfs_open_files gauge",
                                             "tempfs_open_files 4.5",
                                             "# HELP tempfs_mounts Mounted file systems.",
                                             "# TYPE tempfs_mounts gauge",
                                             "tempfs_mounts 3",
                                         }));
  EXPECT_EQ(plain.value(), 0u);
}

TEST(Metrics, HistogramFormat) {
  MetricsRegistry r;
  Histogram& h = r.AddHistogram("tempfs_op_seconds", "Latency.", {{"op", "read"}}, {0.001, 0.01, 0.1});
  h.Observe(0.0005);                            // bucket 0.001
  h.Observe(0.001);                             // bound is inclusive: bucket 0.001
  h.Observe(std::chrono::milliseconds(5));      // bucket 0.01
  h.Observe(0.05);                              // bucket 0.1
  h.Observe(2.0);                               // +Inf only
  h.Observe(-1.0);                              // counts as zero
  r.AddHistogram("tempfs_op_seconds", "Latency.", {{"op", "write"}}, {0.001, 0.01, 0.1});

  std::vector<std::string> lines = Lines(r.RenderPrometheus());
  EXPECT_EQ(lines, (std::vector<std::string>{
                       "# HELP tempfs_op_seconds Latency.",
                       "# TYPE tempfs_op_seconds histogram",
                       "tempfs_op_seconds_bucket{op=\"read\",le=\"0.001\"} 3",
                       "tempfs_op_seconds_bucket{op=\"read\",le=\"0.01\"} 4",
                       "tempfs_op_seconds_bucket{op=\"read\",le=\"0.1\"} 5",
                       "tempfs_op_seconds_bucket{op=\"read\",le=\"+Inf\"} 6",
                       "tempfs_op_seconds_sum{op=\"read\"} 2.0565",
                       "tempfs_op_seconds_count{op=\"read\"} 6",
                       "tempfs_op_seconds_bucket{op=\"write\",le=\"0.001\"} 0",
                       "tempfs_op_seconds_bucket{op=\"write\",le=\"0.01\"} 0",
                       "tempfs_op_seconds_bucket{op=\"write\",le=\"0.1\"} 0",
                       "tempfs_op_seconds_bucket{op=\"write\",le=\"+Inf\"} 0",
                       "tempfs_op_seconds_sum{op=\"write\"} 0",
                       "tempfs_op_seconds_count{op=\"write\"} 0",
                   }));
  EXPECT_EQ(h.sum_nanos(), 2056500000u);
}

TEST(Metrics, DefaultBoundsCoverTenMicrosToTenSeconds) {
  const auto& b = Histogram::DefaultLatencyBounds();
  ASSERT_FALSE(b.empty());
  EXPECT_DOUBLE_EQ(b.front(), 1e-5);
  EXPECT_DOUBLE_EQ(b.back(), 10.0);
  for (size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);

  MetricsRegistry r;
  Histogram& h = r.AddHistogram("lat_seconds", "x");
  EXPECT_EQ(h.bounds(), b);
  std::string text = r.RenderPrometheus();
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"1e-05\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"+Inf\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_count 0\n"), std::string::npos) << text;
}

TEST(Metrics, Escaping) {
  MetricsRegistry r;
  r.AddCounter("c_total", "Help with \\ and\nnewline \"quotes\" kept.", {{"path", "a\\b\"c\nd"}, {"x", ""}}).Add();
  EXPECT_EQ(Lines(r.RenderPrometheus()), (std::vector<std::string>{
                                             "# HELP c_total Help with \\\\ and\\nnewline \"quotes\" kept.",
                                             "# TYPE c_total counter",
                                             "c_total{path=\"a\\\\b\\\"c\\nd\",x=\"\"} 1",
                                         }));
}

TEST(Metrics, SpecialGaugeValues) {
  MetricsRegistry r;
  r.AddGaugeCallback("g_nan", "x", {}, [] { return std::nan(""); });
  r.AddGaugeCallback("g_inf", "x", {}, [] { return -std::numeric_limits<double>::infinity(); });
  r.AddGaugeCallback("g_small", "x", {}, [] { return 1.5e-7; });
  std::vector<std::string> lines = Lines(r.RenderPrometheus());
  ASSERT_EQ(lines.size(), 9u);
  EXPECT_EQ(lines[2], "g_nan NaN");
  EXPECT_EQ(lines[5], "g_inf -Inf");
  EXPECT_EQ(lines[8], "g_small 1.5e-07");
}

TEST(Metrics, RegistrationRules) {
  MetricsRegistry r;
  Counter& a = r.AddCounter("same_total", "x", {{"k", "v"}});
  EXPECT_EQ(&a, &r.AddCounter("same_total", "x", {{"k", "v"}}));  // same series back
  EXPECT_NE(&a, &r.AddCounter("same_total", "x", {{"k", "w"}}));
  EXPECT_THROW(r.AddGauge("same_total", "x"), std::invalid_argument);  // type clash
  EXPECT_THROW(r.AddCounter("bad-name", "x"), std::invalid_argument);
  EXPECT_THROW(r.AddCounter("1abc", "x"), std::invalid_argument);
  EXPECT_THROW(r.AddCounter("ok_total", "x", {{"bad:label", "v"}}), std::invalid_argument);
  EXPECT_THROW(r.AddCounter("ok_total", "x", {{"__reserved", "v"}}), std::invalid_argument);
  EXPECT_THROW(r.AddHistogram("h_seconds", "x", {{"le", "1"}}), std::invalid_argument);
  EXPECT_THROW(r.AddHistogram("h2_seconds", "x", {}, {0.1, 0.1}), std::invalid_argument);
  Gauge& g = r.AddGauge("g", "x");
  EXPECT_THROW(r.AddGaugeCallback("g", "x", {}, [] { return 1.0; }), std::invalid_argument);
  g.Set(1);
  // References stay valid as more families and series are added.
  for (int i = 0; i < 200; ++i) r.AddCounter("many_" + std::to_string(i) + "_total", "x").Add();
  a.Add(9);
  EXPECT_EQ(a.value(), 9u);
  std::string text = r.RenderPrometheus();
  EXPECT_NE(text.find("same_total{k=\"v\"} 9\n"), std::string::npos);
  EXPECT_NE(text.find("many_199_total 1\n"), std::string::npos);
}

TEST(Metrics, HelpAndTypeOncePerFamily) {
  MetricsRegistry r;
  for (int i = 0; i < 5; ++i) r.AddHistogram("h_seconds", "x", {{"op", std::to_string(i)}}).Observe(0.001);
  for (int i = 0; i < 5; ++i) r.AddCounter("c_total", "x", {{"op", std::to_string(i)}}).Add();
  int help = 0, type = 0;
  for (const std::string& line : Lines(r.RenderPrometheus())) {
    help += line.starts_with("# HELP ");
    type += line.starts_with("# TYPE ");
  }
  EXPECT_EQ(help, 2);
  EXPECT_EQ(type, 2);
}

TEST(Metrics, ConcurrentUpdatesAreExact) {
  MetricsRegistry r;
  Histogram& h = r.AddHistogram("op_seconds", "x");
  Counter& c = r.AddCounter("ops_total", "x");
  constexpr int kThreads = 4, kPerThread = 100000;
  std::vector<std::thread> threads;
  std::atomic<bool> stop{false};
  // A renderer runs alongside: it must never see +Inf differ from _count.
  std::thread renderer([&] {
    while (!stop) {
      std::string text = r.RenderPrometheus();
      size_t inf = text.find("op_seconds_bucket{le=\"+Inf\"} ");
      size_t count = text.find("op_seconds_count ");
      ASSERT_NE(inf, std::string::npos);
      ASSERT_NE(count, std::string::npos);
      std::string a = text.substr(inf + 29, text.find('\n', inf) - inf - 29);
      std::string b = text.substr(count + 17, text.find('\n', count) - count - 17);
      ASSERT_EQ(a, b);
    }
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        h.Observe(std::chrono::microseconds(1 + (i + t) % 2000));
        c.Add();
      }
    });
  }
  for (auto& t : threads) t.join();
  stop = true;
  renderer.join();
  uint64_t total = 0;
  for (uint64_t n : h.BucketCounts()) total += n;
  EXPECT_EQ(total, uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(c.value(), uint64_t{kThreads} * kPerThread);
  uint64_t expected_ns = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) expected_ns += uint64_t(1 + (i + t) % 2000) * 1000;
  }
  EXPECT_EQ(h.sum_nanos(), expected_ns);
  std::string text = r.RenderPrometheus();
  EXPECT_NE(text.find("op_seconds_count 400000\n"), std::string::npos);
  EXPECT_NE(text.find("ops_total 400000\n"), std::string::npos);
}

}  // namespace
}  // namespace tempfs
