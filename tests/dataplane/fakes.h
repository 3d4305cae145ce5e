// Test fakes at the data plane's seams: a PluginClient whose answers the test scripts and a
// PluginHost whose plugin states the test sets (the Exchange fake: tests/support/fake_exchange.h).
// Like the real ones, the fakes complete asynchronously on their own threads (a "gRPC thread", a "session
// strand"), so handlers are exercised with the threading they meet in production.
// Shared with tests/dataplane_streams (helper "dataplane-streams").
#pragma once

#include "aggregator/http/exchange.h"
#include "aggregator/plugin/plugin_client.h"
#include "tests/support/fake_exchange.h"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/verb.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace dpa::testing {

// One thread running posted tasks in order: stands in for a gRPC completion thread.
class SerialThread {
 public:
  SerialThread() : thread_([this] { run(); }) {}
  ~SerialThread() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void post(std::function<void()> task, std::chrono::milliseconds delay = {}) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back({std::chrono::steady_clock::now() + delay, std::move(task)});
      // Notified under the lock: once post() has released it, the destructor may run.
      cv_.notify_all();
    }
  }
  // Waits until every task posted so far has run.
  void drain() {
    std::promise<void> done;
    post([&] { done.set_value(); });
    done.get_future().wait();
  }

 private:
  struct Task {
    std::chrono::steady_clock::time_point at;
    std::function<void()> fn;
  };
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      if (stop_ && tasks_.empty()) return;
      if (tasks_.empty()) {
        cv_.wait(lock);
        continue;
      }
      // Tasks run in post order; a delayed task also delays the ones queued behind it (the tests
      // care about ordering more than about overlapping delays).
      auto at = tasks_.front().at;
      if (std::chrono::steady_clock::now() < at && !stop_) {
        cv_.wait_until(lock, at);
        continue;
      }
      auto fn = std::move(tasks_.front().fn);
      tasks_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Task> tasks_;
  bool stop_ = false;
  std::thread thread_;
};

// A scripted server-streaming call (CallResource or RunStream). The test drives it: send()
// delivers a message, finish() ends it. cancel() (from the code under test) ends it with 503
// "cancelled", like the real client.
template <class Request, class Message>
class FakeStream : public plugin::StreamCall,
                   public std::enable_shared_from_this<FakeStream<Request, Message>> {
 public:
  FakeStream(SerialThread& thread, Request req, std::function<void(Message)> on_message,
             std::function<void(api::Outcome)> done)
      : request(std::move(req)), thread_(thread), on_message_(std::move(on_message)),
        done_(std::move(done)) {}

  const Request request;

  void send(Message m) {
    auto self = this->shared_from_this();
    thread_.post([self, m = std::move(m)]() mutable {
      if (!self->finished_) self->on_message_(std::move(m));
    });
  }
  void finish(api::Outcome outcome = api::Ok{}) {
    auto self = this->shared_from_this();
    thread_.post([self, outcome = std::move(outcome)]() mutable {
      if (self->finished_.exchange(true)) return;
      // Like the real reactor after OnDone: the callbacks (which hold the caller's state, often
      // with this stream's handle in it) are released, so no reference cycle outlives the call.
      auto done = std::move(self->done_);
      self->done_ = nullptr;
      self->on_message_ = nullptr;
      done(std::move(outcome));
    });
  }
  void cancel() override {
    cancelled_ = true;
    finish(api::ApiError::unavailable("cancelled"));
  }
  bool cancelled() const { return cancelled_; }
  bool finished() const { return finished_; }

 private:
  SerialThread& thread_;
  std::function<void(Message)> on_message_;
  std::function<void(api::Outcome)> done_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> finished_{false};
};

// The handle returned to the code under test: cancel() forwards to the shared stream, so the
// handle may be destroyed while the test still drives the stream.
template <class S>
class StreamHandle : public plugin::StreamCall {
 public:
  explicit StreamHandle(std::shared_ptr<S> s) : s_(std::move(s)) {}
  void cancel() override { s_->cancel(); }

 private:
  std::shared_ptr<S> s_;
};

using FakeResourceStream = FakeStream<pluginv2::CallResourceRequest, pluginv2::CallResourceResponse>;
using FakeRunStream = FakeStream<pluginv2::RunStreamRequest, pluginv2::StreamPacket>;

// Every unary RPC answers through a settable handler (default: 501 "not implemented", as a plugin
// that does not register the service). Requests are recorded. Callbacks run on the fake's own
// thread, optionally after `delay`.
class FakePluginClient : public plugin::PluginClient {
 public:
  template <class Req, class Resp>
  using Handler = std::function<api::Expected<Resp>(const Req&)>;

  explicit FakePluginClient(std::string id) : id_(std::move(id)) {}

  Handler<pluginv2::QueryDataRequest, pluginv2::QueryDataResponse> on_query_data;
  Handler<pluginv2::CheckHealthRequest, pluginv2::CheckHealthResponse> on_check_health;
  Handler<pluginv2::CollectMetricsRequest, pluginv2::CollectMetricsResponse> on_collect_metrics;
  Handler<pluginv2::SubscribeStreamRequest, pluginv2::SubscribeStreamResponse> on_subscribe_stream;
  Handler<pluginv2::PublishStreamRequest, pluginv2::PublishStreamResponse> on_publish_stream;
  Handler<pluginv2::AdmissionRequest, pluginv2::ValidationResponse> on_validate_admission;
  Handler<pluginv2::AdmissionRequest, pluginv2::MutationResponse> on_mutate_admission;
  Handler<pluginv2::ConversionRequest, pluginv2::ConversionResponse> on_convert_objects;
  // Called with each new stream so the test can script it (send/finish) now or later.
  std::function<void(std::shared_ptr<FakeResourceStream>)> on_call_resource;
  std::function<void(std::shared_ptr<FakeRunStream>)> on_run_stream;
  std::chrono::milliseconds delay{0};

  const std::string& plugin_id() const override { return id_; }

  void query_data(pluginv2::QueryDataRequest req, plugin::CallContext context,
                  boost::asio::any_io_executor,
                  plugin::Callback<pluginv2::QueryDataResponse> done) override {
    unary("QueryData", on_query_data, query_requests_, std::move(req), context, std::move(done));
  }
  void check_health(pluginv2::CheckHealthRequest req, plugin::CallContext context,
                    plugin::Callback<pluginv2::CheckHealthResponse> done) override {
    unary("CheckHealth", on_check_health, health_requests_, std::move(req), context,
          std::move(done));
  }
  void collect_metrics(pluginv2::CollectMetricsRequest req, plugin::CallContext context,
                       plugin::Callback<pluginv2::CollectMetricsResponse> done) override {
    unary("CollectMetrics", on_collect_metrics, metrics_requests_, std::move(req), context,
          std::move(done));
  }
  void subscribe_stream(pluginv2::SubscribeStreamRequest req, plugin::CallContext context,
                        plugin::Callback<pluginv2::SubscribeStreamResponse> done) override {
    unary("SubscribeStream", on_subscribe_stream, subscribe_requests_, std::move(req), context,
          std::move(done));
  }
  void publish_stream(pluginv2::PublishStreamRequest req, plugin::CallContext context,
                      plugin::Callback<pluginv2::PublishStreamResponse> done) override {
    unary("PublishStream", on_publish_stream, publish_requests_, std::move(req), context,
          std::move(done));
  }
  void validate_admission(pluginv2::AdmissionRequest req, plugin::CallContext context,
                          plugin::Callback<pluginv2::ValidationResponse> done) override {
    unary("ValidateAdmission", on_validate_admission, admission_requests_, std::move(req), context,
          std::move(done));
  }
  void mutate_admission(pluginv2::AdmissionRequest req, plugin::CallContext context,
                        plugin::Callback<pluginv2::MutationResponse> done) override {
    unary("MutateAdmission", on_mutate_admission, admission_requests_, std::move(req), context,
          std::move(done));
  }
  void convert_objects(pluginv2::ConversionRequest req, plugin::CallContext context,
                       plugin::Callback<pluginv2::ConversionResponse> done) override {
    unary("ConvertObjects", on_convert_objects, conversion_requests_, std::move(req), context,
          std::move(done));
  }
  std::unique_ptr<plugin::StreamCall> call_resource(
      pluginv2::CallResourceRequest req, plugin::CallContext context,
      std::function<void(pluginv2::CallResourceResponse)> on_message,
      std::function<void(api::Outcome)> done) override {
    auto s = std::make_shared<FakeResourceStream>(thread_, std::move(req), std::move(on_message),
                                                  std::move(done));
    {
      std::lock_guard lock(mutex_);
      resource_streams_.push_back(s);
      traces_.push_back(std::move(context.trace));
    }
    if (on_call_resource) {
      on_call_resource(s);
    } else {
      s->finish(not_implemented("CallResource"));
    }
    return std::make_unique<StreamHandle<FakeResourceStream>>(s);
  }
  std::unique_ptr<plugin::StreamCall> run_stream(
      pluginv2::RunStreamRequest req, plugin::CallContext context,
      std::function<void(pluginv2::StreamPacket)> on_packet,
      std::function<void(api::Outcome)> done) override {
    auto s = std::make_shared<FakeRunStream>(thread_, std::move(req), std::move(on_packet),
                                             std::move(done));
    {
      std::lock_guard lock(mutex_);
      run_streams_.push_back(s);
      traces_.push_back(std::move(context.trace));
    }
    if (on_run_stream) on_run_stream(s);
    return std::make_unique<StreamHandle<FakeRunStream>>(s);
  }

  // Recorded requests (copies, safe from the test thread).
  std::vector<pluginv2::QueryDataRequest> query_requests() const { return copy(query_requests_); }
  std::vector<pluginv2::CheckHealthRequest> health_requests() const { return copy(health_requests_); }
  std::vector<pluginv2::CollectMetricsRequest> metrics_requests() const { return copy(metrics_requests_); }
  std::vector<pluginv2::SubscribeStreamRequest> subscribe_requests() const { return copy(subscribe_requests_); }
  std::vector<pluginv2::PublishStreamRequest> publish_requests() const { return copy(publish_requests_); }
  std::vector<pluginv2::AdmissionRequest> admission_requests() const { return copy(admission_requests_); }
  std::vector<pluginv2::ConversionRequest> conversion_requests() const { return copy(conversion_requests_); }
  std::vector<std::shared_ptr<FakeResourceStream>> resource_streams() const { return copy(resource_streams_); }
  std::vector<std::shared_ptr<FakeRunStream>> run_streams() const { return copy(run_streams_); }
  std::vector<std::chrono::milliseconds> timeouts() const { return copy(timeouts_); }
  // The trace context of every call, in call order (streams included).
  std::vector<obs::TraceContext> traces() const { return copy(traces_); }

  // Waits until every callback posted so far has run.
  void drain() { thread_.drain(); }

  api::ApiError not_implemented(const std::string& rpc) const {
    api::ApiError e;
    e.code = 501;
    e.reason = "NotImplemented";
    e.message = "plugin " + id_ + " does not implement " + rpc;
    return e;
  }

 private:
  template <class T>
  std::vector<T> copy(const std::vector<T>& v) const {
    std::lock_guard lock(mutex_);
    return v;
  }

  template <class Req, class Resp>
  void unary(const char* rpc, const Handler<Req, Resp>& handler, std::vector<Req>& log, Req req,
             const plugin::CallContext& context, plugin::Callback<Resp> done) {
    {
      std::lock_guard lock(mutex_);
      log.push_back(req);
      timeouts_.push_back(context.timeout);
      traces_.push_back(context.trace);
    }
    api::Expected<Resp> result = handler ? handler(req) : api::Expected<Resp>(not_implemented(rpc));
    thread_.post([done = std::move(done), result = std::move(result)]() mutable {
      done(std::move(result));
    }, delay);
  }

  std::string id_;
  mutable std::mutex mutex_;
  std::vector<pluginv2::QueryDataRequest> query_requests_;
  std::vector<pluginv2::CheckHealthRequest> health_requests_;
  std::vector<pluginv2::CollectMetricsRequest> metrics_requests_;
  std::vector<pluginv2::SubscribeStreamRequest> subscribe_requests_;
  std::vector<pluginv2::PublishStreamRequest> publish_requests_;
  std::vector<pluginv2::AdmissionRequest> admission_requests_;
  std::vector<pluginv2::ConversionRequest> conversion_requests_;
  std::vector<std::shared_ptr<FakeResourceStream>> resource_streams_;
  std::vector<std::shared_ptr<FakeRunStream>> run_streams_;
  std::vector<std::chrono::milliseconds> timeouts_;
  std::vector<obs::TraceContext> traces_;
  SerialThread thread_;  // last: destroyed first, so no callback outlives the members above
};

// Plugins by id with test-set states. client(id) is non-null only while kRunning.
class FakePluginHost : public plugin::PluginHost {
 public:
  // Adds a running datasource plugin and returns its fake client.
  std::shared_ptr<FakePluginClient> add(const std::string& id, const std::string& type = "datasource",
                                        const std::string& version = "1.0.0") {
    auto client = std::make_shared<FakePluginClient>(id);
    plugin::PluginInfo info;
    info.id = id;
    info.type = type;
    info.name = id;
    info.version = version;
    info.backend = true;
    {
      std::lock_guard lock(mutex_);
      plugins_[id] = Entry{client, {plugin::PluginState::kRunning, ""}, info};
    }
    return client;
  }
  void set_status(const std::string& id, plugin::PluginState state, std::string message = {}) {
    std::vector<Listener> listeners;
    plugin::PluginStatus status{state, std::move(message)};
    {
      std::lock_guard lock(mutex_);
      plugins_[id].status = status;
      listeners = listeners_;
    }
    for (auto& l : listeners) l(id, status);
  }

  std::shared_ptr<plugin::PluginClient> client(const std::string& id) override {
    std::lock_guard lock(mutex_);
    auto it = plugins_.find(id);
    if (it == plugins_.end() || it->second.status.state != plugin::PluginState::kRunning) {
      return nullptr;
    }
    return it->second.client;
  }
  plugin::PluginStatus status(const std::string& id) const override {
    std::lock_guard lock(mutex_);
    auto it = plugins_.find(id);
    if (it == plugins_.end()) return {plugin::PluginState::kNotFound, "plugin " + id + " not found"};
    return it->second.status;
  }
  std::optional<plugin::PluginInfo> info(const std::string& id) const override {
    std::lock_guard lock(mutex_);
    auto it = plugins_.find(id);
    if (it == plugins_.end() || !it->second.info) return std::nullopt;
    return it->second.info;
  }
  void on_status_change(
      std::function<void(const std::string&, plugin::PluginStatus)> cb) override {
    std::lock_guard lock(mutex_);
    listeners_.push_back(std::move(cb));
  }

 private:
  using Listener = std::function<void(const std::string&, plugin::PluginStatus)>;
  struct Entry {
    std::shared_ptr<FakePluginClient> client;
    plugin::PluginStatus status;
    std::optional<plugin::PluginInfo> info;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Entry> plugins_;
  std::vector<Listener> listeners_;
};

}  // namespace dpa::testing
