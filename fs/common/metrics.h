// Metrics: counters, gauges and latency histograms, rendered in the Prometheus
// text exposition format 0.0.4.
//
// A family is a name, a help text and a type; it holds one series per fixed
// label set (e.g. {op="lookup"}). The registry owns every family and series:
// the references it hands out stay valid for the registry's life, so hot
// paths keep a `Counter&` or `Histogram&` and never look anything up again.
//
// Registration (Add*) is for start-up: a bad metric or label name, or a name
// already used with another type, throws std::invalid_argument. Adding the
// same name and labels again returns the series that already exists.
//
// Thread safety: everything. Counter::Add, Gauge::Set and Histogram::Observe
// are lock-free atomics; registration and rendering take the registry's
// mutex. Gauge callbacks run under that mutex at render time, so they must be
// quick and must not call back into the registry.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace tempfs {

// Label name/value pairs, rendered in this order.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d) { value_.fetch_add(d, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into fixed buckets by upper bound (an observation equal
// to a bound counts in that bucket, as Prometheus' `le` says). The sum is kept
// in whole nanoseconds; negative or NaN observations count as zero.
class Histogram {
 public:
  // Upper bounds in seconds, increasing; +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);
  // 10 µs .. 10 s in 1-2.5-5 steps: suits file system operation latencies.
  static const std::vector<double>& DefaultLatencyBounds();

  void Observe(double seconds);
  void Observe(std::chrono::nanoseconds d);

  const std::vector<double>& bounds() const { return bounds_; }
  // Per bucket (not cumulative), bounds().size() + 1 entries, +Inf last.
  std::vector<uint64_t> BucketCounts() const;
  uint64_t sum_nanos() const { return sum_ns_.load(std::memory_order_relaxed); }

 private:
  void Record(size_t bucket, uint64_t nanos);

  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> sum_ns_{0};
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  Counter& AddCounter(const std::string& name, const std::string& help, const MetricLabels& labels = {});
  // A counter kept elsewhere (e.g. an existing atomic): `read` is called at
  // every render and must never go down.
  void AddCounterCallback(const std::string& name, const std::string& help, const MetricLabels& labels,
                          std::function<uint64_t()> read);
  Gauge& AddGauge(const std::string& name, const std::string& help, const MetricLabels& labels = {});
  // `read` is called at every render; a second call with the same name and
  // labels replaces the callback.
  void AddGaugeCallback(const std::string& name, const std::string& help, const MetricLabels& labels,
                        std::function<double()> read);
  Histogram& AddHistogram(const std::string& name, const std::string& help, const MetricLabels& labels = {},
                          const std::vector<double>& bounds = Histogram::DefaultLatencyBounds());

  // Families in the order they were first added, series in the same way.
  std::string RenderPrometheus() const;

 private:
  struct Series;
  struct Family;
  Series& GetSeries(const std::string& name, const std::string& help, int type, const MetricLabels& labels);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;  // guarded by mu_
  std::map<std::string, Family*> by_name_;         // guarded by mu_
};

}  // namespace tempfs
