#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace tempfs {

// ---- Histogram ----

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      throw std::invalid_argument("histogram bounds must be finite and increasing");
    }
  }
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

const std::vector<double>& Histogram::DefaultLatencyBounds() {
  static const std::vector<double> kBounds = {
      0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,   0.05,     0.1,     0.25,   0.5,     1,      2.5,   5,      10};
  return kBounds;
}

void Histogram::Record(size_t bucket, uint64_t nanos) {
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(nanos, std::memory_order_relaxed);
}

void Histogram::Observe(double seconds) {
  if (!(seconds > 0)) seconds = 0;  // also NaN
  // First bound >= seconds: `le` is inclusive.
  size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin();
  double ns = std::min(seconds * 1e9, 1e18);  // 31 years: keeps the sum from wrapping
  Record(bucket, static_cast<uint64_t>(std::llround(ns)));
}

void Histogram::Observe(std::chrono::nanoseconds d) {
  int64_t ns = std::max<int64_t>(d.count(), 0);
  double seconds = static_cast<double>(ns) / 1e9;
  size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin();
  Record(bucket, static_cast<uint64_t>(ns));
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

// ---- Registry ----

namespace {

enum Type { kCounter, kGauge, kHistogram };
const char* const kTypeNames[] = {"counter", "gauge", "histogram"};

bool ValidName(const std::string& s, bool colons) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colons && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Label values: backslash, quote and newline escaped. Help: backslash and newline.
std::string Escape(const std::string& s, bool quote) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '"' && quote) out += "\\\"";
    else out += c;
  }
  return out;
}

std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

// {a="x",b="y"} with an optional extra pair last (the histogram's `le`).
std::string LabelText(const MetricLabels& labels, const char* extra_name = nullptr,
                      const std::string& extra_value = {}) {
  if (labels.empty() && extra_name == nullptr) return {};
  std::string out = "{";
  for (const auto& [k, v] : labels) {
    if (out.size() > 1) out += ',';
    out += k + "=\"" + Escape(v, true) + "\"";
  }
  if (extra_name != nullptr) {
    if (out.size() > 1) out += ',';
    out += std::string(extra_name) + "=\"" + extra_value + "\"";
  }
  return out + "}";
}

}  // namespace

struct MetricsRegistry::Series {
  MetricLabels labels;
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::function<double()> read;
  std::function<uint64_t()> read_count;
  std::unique_ptr<Histogram> histogram;
};

struct MetricsRegistry::Family {
  std::string name, help;
  int type;
  std::vector<std::unique_ptr<Series>> series;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Series& MetricsRegistry::GetSeries(const std::string& name, const std::string& help, int type,
                                                    const MetricLabels& labels) {
  if (!ValidName(name, true)) throw std::invalid_argument("bad metric name '" + name + "'");
  for (const auto& [k, v] : labels) {
    if (!ValidName(k, false) || k.starts_with("__") || (type == kHistogram && k == "le")) {
      throw std::invalid_argument("bad label name '" + k + "' on metric " + name);
    }
  }
  auto it = by_name_.find(name);
  Family* family;
  if (it == by_name_.end()) {
    families_.push_back(std::make_unique<Family>(Family{name, help, type, {}}));
    family = families_.back().get();
    by_name_[name] = family;
  } else {
    family = it->second;
    if (family->type != type) {
      throw std::invalid_argument("metric " + name + " is already a " + kTypeNames[family->type]);
    }
  }
  for (auto& s : family->series) {
    if (s->labels == labels) return *s;
  }
  family->series.push_back(std::make_unique<Series>());
  family->series.back()->labels = labels;
  return *family->series.back();
}

Counter& MetricsRegistry::AddCounter(const std::string& name, const std::string& help, const MetricLabels& labels) {
  std::lock_guard lock(mu_);
  Series& s = GetSeries(name, help, kCounter, labels);
  if (s.read_count) throw std::invalid_argument("counter " + name + " already has a callback for these labels");
  if (!s.counter) s.counter = std::make_unique<Counter>();
  return *s.counter;
}

void MetricsRegistry::AddCounterCallback(const std::string& name, const std::string& help, const MetricLabels& labels,
                                         std::function<uint64_t()> read) {
  std::lock_guard lock(mu_);
  Series& s = GetSeries(name, help, kCounter, labels);
  if (s.counter) throw std::invalid_argument("counter " + name + " is already kept by the registry for these labels");
  s.read_count = std::move(read);
}

Gauge& MetricsRegistry::AddGauge(const std::string& name, const std::string& help, const MetricLabels& labels) {
  std::lock_guard lock(mu_);
  Series& s = GetSeries(name, help, kGauge, labels);
  if (s.read) throw std::invalid_argument("gauge " + name + " already has a callback for these labels");
  if (!s.gauge) s.gauge = std::make_unique<Gauge>();
  return *s.gauge;
}

void MetricsRegistry::AddGaugeCallback(const std::string& name, const std::string& help, const MetricLabels& labels,
                                       std::function<double()> read) {
  std::lock_guard lock(mu_);
  Series& s = GetSeries(name, help, kGauge, labels);
  if (s.gauge) throw std::invalid_argument("gauge " + name + " is already settable for these labels");
  s.read = std::move(read);
}

Histogram& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help, const MetricLabels& labels,
                                         const std::vector<double>& bounds) {
  auto h = std::make_unique<Histogram>(bounds);  // checks the bounds before anything is registered
  std::lock_guard lock(mu_);
  Series& s = GetSeries(name, help, kHistogram, labels);
  if (!s.histogram) s.histogram = std::move(h);
  return *s.histogram;
}

std::string MetricsRegistry::RenderPrometheus() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& f : families_) {
    out += "# HELP " + f->name + " " + Escape(f->help, false) + "\n";
    out += "# TYPE " + f->name + " " + kTypeNames[f->type] + "\n";
    for (const auto& s : f->series) {
      if (f->type == kCounter) {
        uint64_t v = s->read_count ? s->read_count() : s->counter ? s->counter->value() : 0;
        out += f->name + LabelText(s->labels) + " " + std::to_string(v) + "\n";
      } else if (f->type == kGauge) {
        double v = s->read ? s->read() : s->gauge ? s->gauge->value() : 0;
        out += f->name + LabelText(s->labels) + " " + FormatDouble(v) + "\n";
      } else {
        const Histogram& h = *s->histogram;
        // One snapshot, so that the +Inf bucket and _count agree.
        std::vector<uint64_t> counts = h.BucketCounts();
        uint64_t cumulative = 0;
        for (size_t i = 0; i < counts.size(); ++i) {
          cumulative += counts[i];
          std::string le = i < h.bounds().size() ? FormatDouble(h.bounds()[i]) : "+Inf";
          out += f->name + "_bucket" + LabelText(s->labels, "le", le) + " " + std::to_string(cumulative) + "\n";
        }
        out += f->name + "_sum" + LabelText(s->labels) + " " + FormatDouble(h.sum_nanos() / 1e9) + "\n";
        out += f->name + "_count" + LabelText(s->labels) + " " + std::to_string(cumulative) + "\n";
      }
    }
  }
  return out;
}

}  // namespace tempfs
