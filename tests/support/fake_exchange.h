// The test double at the HTTP seam, shared by every handler test: an in-memory http::Exchange over
// a scripted request that records what the handler answers (a whole response, or a streamed head,
// chunks and lines, finish/abort, an upgrade), and lets the test play the client going away; plus
// PipeStream, an in-memory duplex ByteStream standing for an upgraded connection.
//
// Thread-safe: handlers answer from gRPC-like threads, the store thread or a blocking pool while
// the test waits. Callbacks (body reads, write completions, on_close) run asynchronously on one
// process-wide callback thread, as a real session runs them on its strand. No fake owns the
// executor its callbacks run on: its last reference may be dropped inside one of them.
#pragma once

#include "aggregator/http/exchange.h"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/verb.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dpa::testing {

// The one thread every fake's callbacks run on.
inline boost::asio::any_io_executor callback_executor() {
  static boost::asio::thread_pool pool{1};
  return pool.get_executor();
}

// Waits until every callback posted to that thread so far has run (a fixture tearing down the
// executors those callbacks post into must drain them first).
inline void drain_callbacks() {
  std::promise<void> drained;
  boost::asio::post(callback_executor(), [&drained] { drained.set_value(); });
  drained.get_future().wait();
}

// One end of an in-memory duplex byte pipe. read_some completes when bytes arrive or the pipe
// closes; write hands bytes to the peer at once.
class PipeStream : public http::ByteStream {
 public:
  struct Shared {
    std::mutex mutex;
    std::condition_variable cv;
    std::string to[2];  // bytes waiting for side i
    bool closed = false;
    std::function<void(bool, std::string)> reader[2];
  };

  PipeStream(std::shared_ptr<Shared> shared, int side, boost::asio::any_io_executor executor)
      : shared_(std::move(shared)), side_(side), executor_(std::move(executor)) {}
  ~PipeStream() override { close(); }

  static std::pair<std::unique_ptr<PipeStream>, std::unique_ptr<PipeStream>> make_pair(
      boost::asio::any_io_executor executor = callback_executor()) {
    auto shared = std::make_shared<Shared>();
    return {std::make_unique<PipeStream>(shared, 0, executor),
            std::make_unique<PipeStream>(shared, 1, executor)};
  }

  void read_some(std::function<void(bool ok, std::string bytes)> done) override {
    std::unique_lock lock(shared_->mutex);
    if (!shared_->to[side_].empty()) {
      std::string bytes = std::move(shared_->to[side_]);
      shared_->to[side_].clear();
      lock.unlock();
      boost::asio::post(executor_, [done, bytes = std::move(bytes)]() mutable {
        done(true, std::move(bytes));
      });
      return;
    }
    if (shared_->closed) {
      lock.unlock();
      boost::asio::post(executor_, [done] { done(false, std::string()); });
      return;
    }
    shared_->reader[side_] = std::move(done);
  }

  void write(std::string bytes, std::function<void(bool ok)> done) override {
    std::unique_lock lock(shared_->mutex);
    if (shared_->closed) {
      lock.unlock();
      if (done) boost::asio::post(executor_, [done] { done(false); });
      return;
    }
    const int peer = 1 - side_;
    auto reader = std::move(shared_->reader[peer]);
    shared_->reader[peer] = nullptr;
    if (reader) {
      boost::asio::post(executor_, [reader, bytes = std::move(bytes)]() mutable {
        reader(true, std::move(bytes));
      });
    } else {
      shared_->to[peer].append(bytes);
    }
    shared_->cv.notify_all();
    lock.unlock();
    if (done) boost::asio::post(executor_, [done] { done(true); });
  }

  void close() override {
    std::unique_lock lock(shared_->mutex);
    if (shared_->closed) return;
    shared_->closed = true;
    for (auto& reader : shared_->reader) {
      if (auto r = std::move(reader)) {
        reader = nullptr;
        boost::asio::post(executor_, [r] { r(false, std::string()); });
      }
    }
    shared_->cv.notify_all();
  }

  boost::asio::any_io_executor executor() override { return executor_; }

  // Test side (blocking): what the other end wrote so far, once at least `at_least` bytes (or
  // the close) arrived; and waiting for the close.
  std::string take_written_by_peer(std::size_t at_least, std::chrono::milliseconds timeout) {
    std::unique_lock lock(shared_->mutex);
    shared_->cv.wait_for(lock, timeout, [&] {
      return shared_->to[side_].size() >= at_least || shared_->closed;
    });
    std::string bytes = std::move(shared_->to[side_]);
    shared_->to[side_].clear();
    return bytes;
  }
  bool wait_closed(std::chrono::milliseconds timeout) {
    std::unique_lock lock(shared_->mutex);
    return shared_->cv.wait_for(lock, timeout, [&] { return shared_->closed; });
  }

 private:
  std::shared_ptr<Shared> shared_;
  int side_;
  boost::asio::any_io_executor executor_;
};

class FakeExchange : public http::Exchange,
                     public std::enable_shared_from_this<FakeExchange> {
 public:
  using Headers = std::vector<std::pair<std::string, std::string>>;

  FakeExchange(std::string_view method, std::string target, std::string body = {},
               Headers headers = {})
      : body_(std::move(body)) {
    header_.method_string(method);
    header_.target(target);
    header_.version(11);
    for (auto& [k, v] : headers) header_.set(k, v);
    const auto q = target.find('?');
    path_ = target.substr(0, q);
    if (q != std::string::npos) query_ = target.substr(q + 1);
  }
  FakeExchange(boost::beast::http::verb method, std::string target, std::string body = {},
               Headers headers = {})
      : FakeExchange(boost::beast::http::to_string(method), std::move(target), std::move(body),
                     std::move(headers)) {}

  // --- scripted by the test --------------------------------------------------------------------
  void set_pending_bytes(std::size_t n) { pending_bytes_ = n; }
  // false: writes never complete (a stalled client).
  void set_write_completes(bool completes) { write_completes_ = completes; }

  // --- the request -----------------------------------------------------------------------------
  const http::Header& header() const override { return header_; }
  std::string_view path() const override { return path_; }
  std::string_view query() const override { return query_; }
  std::string query_param(std::string_view name) const override {
    auto v = find_param(name);
    return v ? *v : std::string();
  }
  bool has_query_param(std::string_view name) const override {
    return find_param(name).has_value();
  }
  std::string remote_address() const override { return "127.0.0.1:40000"; }
  bool is_tls() const override { return false; }
  const std::string& request_id() const override { return request_id_; }
  const obs::TraceContext& trace_context() const override { return trace_; }

  void read_body(std::size_t limit,
                 std::function<void(api::Expected<std::string>)> done) override {
    api::Expected<std::string> result =
        body_.size() > limit ? api::Expected<std::string>(api::ApiError::too_large(
                                   "request body too large"))
                             : api::Expected<std::string>(body_);
    boost::asio::post(callback_executor(),
                      [done = std::move(done), result = std::move(result)]() mutable {
                        done(std::move(result));
                      });
  }
  void read_body_some(std::function<void(bool, std::string, bool)> done) override {
    boost::asio::post(callback_executor(),
                      [done = std::move(done), b = body_] { done(true, b, true); });
  }

  // --- the response ----------------------------------------------------------------------------
  void respond(http::Response response) override {
    std::function<void()> released;
    std::vector<std::function<void(int)>> completions;
    int status = response.status;
    {
      std::lock_guard lock(mutex_);
      ++responses_;
      response_ = std::move(response);
      // Tests read one body, as a client does.
      for (const auto& part : response_.body_parts) response_.body += *part;
      response_.body_parts.clear();
      released = complete_locked();
      completions.swap(on_complete_);
    }
    cv_.notify_all();
    for (auto& callback : completions) callback(status);
  }
  void begin_stream(http::ResponseHead head) override {
    {
      std::lock_guard lock(mutex_);
      head_ = std::move(head);
    }
    cv_.notify_all();
  }
  void write(std::string chunk, std::function<void(bool)> done = {}) override {
    bool ok;
    {
      std::lock_guard lock(mutex_);
      ok = !closed_ && !finished_;
      if (ok) {
        // Also split into lines, as a watch or NDJSON client reads them.
        partial_line_ += chunk;
        for (std::size_t nl; (nl = partial_line_.find('\n')) != std::string::npos;) {
          lines_.push_back(partial_line_.substr(0, nl));
          partial_line_.erase(0, nl + 1);
        }
        chunks_.push_back(std::move(chunk));
      }
    }
    cv_.notify_all();
    if (done && write_completes_) {
      boost::asio::post(callback_executor(), [done = std::move(done), ok] { done(ok); });
    }
  }
  std::size_t pending_bytes() const override { return pending_bytes_; }
  void finish() override { end_stream(/*aborted=*/false); }
  void abort() override { end_stream(/*aborted=*/true); }
  void on_complete(std::function<void(int)> callback) override {
    int status = 0;
    {
      std::lock_guard lock(mutex_);
      if (!complete_) {
        on_complete_.push_back(std::move(callback));
        return;
      }
      status = response_.status;
    }
    callback(status);
  }
  void on_close(std::function<void()> callback) override {
    bool already_closed;
    {
      std::lock_guard lock(mutex_);
      already_closed = closed_;
      if (!already_closed) on_close_ = std::move(callback);
    }
    if (already_closed && callback) boost::asio::post(callback_executor(), std::move(callback));
  }
  bool closed() const override {
    std::lock_guard lock(mutex_);
    return closed_;
  }
  void upgrade(http::ResponseHead head,
               std::function<void(std::unique_ptr<http::ByteStream>)> done) override {
    auto [server, client] = PipeStream::make_pair();
    {
      std::lock_guard lock(mutex_);
      upgrade_head_ = std::move(head);
      client_side_ = std::move(client);
    }
    cv_.notify_all();
    auto holder = std::make_shared<std::unique_ptr<http::ByteStream>>(std::move(server));
    boost::asio::post(callback_executor(), [done = std::move(done), holder] {
      done(std::move(*holder));
    });
  }
  boost::asio::any_io_executor executor() override { return callback_executor(); }

  // --- the test's side -------------------------------------------------------------------------
  // The client goes away: on_close fires (on the callback thread), writes fail from now on.
  void close_client() {
    std::function<void()> callback;
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      callback = std::move(on_close_);
      on_close_ = nullptr;
    }
    if (callback) boost::asio::post(callback_executor(), std::move(callback));
  }

  // Waits until respond(), finish() or abort() was called.
  bool wait(std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    return wait_until([this] { return complete_; }, limit);
  }
  // Waits for a whole response (not a stream); nullopt when none came in time.
  std::optional<http::Response> wait_response(std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, limit, [this] { return responses_ > 0; })) return std::nullopt;
    return response_;
  }
  // Waits until a stream was ended (finish() or abort()).
  bool wait_finished(std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    return wait_until([this] { return finished_; }, limit);
  }
  bool wait_chunks(std::size_t n, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    return wait_until([&] { return chunks_.size() >= n; }, limit);
  }
  bool wait_lines(std::size_t n, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    return wait_until([&] { return lines_.size() >= n; }, limit);
  }
  bool wait_upgraded(std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    return wait_until([this] { return upgrade_head_.has_value(); }, limit);
  }

  http::Response response() const {
    std::lock_guard lock(mutex_);
    return response_;
  }
  int status() const {
    std::lock_guard lock(mutex_);
    if (responses_ > 0) return response_.status;
    return head_ ? head_->status : 0;
  }
  // The whole response body, or every chunk written so far for a streamed one.
  std::string body() const {
    std::lock_guard lock(mutex_);
    if (responses_ > 0) return response_.body;
    std::string all;
    for (const auto& chunk : chunks_) all += chunk;
    return all;
  }
  // A header of the response or of the streamed head; empty when absent.
  std::string response_header(const std::string& name) const {
    std::lock_guard lock(mutex_);
    const auto& headers = responses_ > 0 || !head_ ? response_.headers : head_->headers;
    for (const auto& [k, v] : headers) {
      if (boost::beast::iequals(k, name)) return v;
    }
    return {};
  }
  int responses() const {
    std::lock_guard lock(mutex_);
    return responses_;
  }
  std::optional<http::ResponseHead> stream_head() const {
    std::lock_guard lock(mutex_);
    return head_;
  }
  std::vector<std::string> chunks() const {
    std::lock_guard lock(mutex_);
    return chunks_;
  }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  bool finished() const {
    std::lock_guard lock(mutex_);
    return finished_;
  }
  bool aborted() const {
    std::lock_guard lock(mutex_);
    return aborted_;
  }
  std::optional<http::ResponseHead> upgrade_head() const {
    std::lock_guard lock(mutex_);
    return upgrade_head_;
  }
  // The client's end of the upgraded connection (null before upgrade()).
  PipeStream* client_side() const {
    std::lock_guard lock(mutex_);
    return client_side_.get();
  }

 private:
  // Like the session: once the response is complete, on_close can no longer fire and its callback
  // (which often holds this exchange) is released; the caller drops it outside the lock.
  std::function<void()> complete_locked() {
    complete_ = true;
    auto released = std::move(on_close_);
    on_close_ = nullptr;
    return released;
  }
  void end_stream(bool aborted) {
    std::function<void()> released;
    std::vector<std::function<void(int)>> completions;
    int status = 0;
    {
      std::lock_guard lock(mutex_);
      finished_ = true;
      aborted_ = aborted_ || aborted;
      released = complete_locked();
      completions.swap(on_complete_);
      status = head_ ? head_->status : 0;
    }
    cv_.notify_all();
    for (auto& callback : completions) callback(status);
  }

  template <class Pred>
  bool wait_until(Pred pred, std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, limit, pred);
  }

  std::optional<std::string> find_param(std::string_view name) const {
    std::string_view q = query_;
    while (!q.empty()) {
      auto amp = q.find('&');
      std::string_view kv = q.substr(0, amp);
      auto eq = kv.find('=');
      if (kv.substr(0, eq) == name) {
        return eq == std::string_view::npos ? std::string() : decode(kv.substr(eq + 1));
      }
      if (amp == std::string_view::npos) break;
      q.remove_prefix(amp + 1);
    }
    return std::nullopt;
  }
  static std::string decode(std::string_view in) {
    std::string out;
    for (std::size_t i = 0; i < in.size(); ++i) {
      if (in[i] == '+') {
        out += ' ';
      } else if (in[i] == '%' && i + 2 < in.size()) {
        out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        out += in[i];
      }
    }
    return out;
  }

  http::Header header_;
  std::string path_, query_, body_;
  std::string request_id_ = "test-request";
  obs::TraceContext trace_ = obs::TraceContext::generate();
  std::atomic<std::size_t> pending_bytes_{0};
  std::atomic<bool> write_completes_{true};

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  http::Response response_;
  std::optional<http::ResponseHead> head_;
  std::vector<std::string> chunks_;
  std::vector<std::string> lines_;
  std::string partial_line_;
  std::optional<http::ResponseHead> upgrade_head_;
  std::unique_ptr<PipeStream> client_side_;
  std::function<void()> on_close_;
  std::vector<std::function<void(int)>> on_complete_;
  bool complete_ = false, finished_ = false, aborted_ = false, closed_ = false;
  int responses_ = 0;
};

inline std::shared_ptr<FakeExchange> make_exchange(boost::beast::http::verb method,
                                                   std::string target, std::string body = {},
                                                   FakeExchange::Headers headers = {}) {
  return std::make_shared<FakeExchange>(method, std::move(target), std::move(body),
                                        std::move(headers));
}
inline std::shared_ptr<FakeExchange> make_exchange(std::string_view method, std::string target,
                                                   std::string body = {},
                                                   FakeExchange::Headers headers = {}) {
  return std::make_shared<FakeExchange>(method, std::move(target), std::move(body),
                                        std::move(headers));
}

}  // namespace dpa::testing
