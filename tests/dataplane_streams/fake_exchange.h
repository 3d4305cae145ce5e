// Test doubles for the HTTP seam of the streaming handlers: an in-memory Exchange that records the
// response (whole or streamed) and lets a test play the client leaving, and a pair of in-memory
// ByteStreams standing for an upgraded connection. Thread-safe: handlers call them from gRPC-like
// threads while the test waits on them.
#pragma once

#include "aggregator/http/exchange.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/http/verb.hpp>

#include <algorithm>
#include <cctype>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dpa::testing {

// Waits (up to `timeout`) for `pred` under `mutex`; true when it held.
template <class Pred>
bool wait_for(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, Pred pred,
              std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  return cv.wait_for(lock, timeout, pred);
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
      boost::asio::any_io_executor executor) {
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

  // Test side helpers (blocking): everything the other end wrote so far / wait until closed.
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

// Records what a handler does with one request.
class RecordingExchange : public http::Exchange {
 public:
  explicit RecordingExchange(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}

  // --- set up by the test ----------------------------------------------------------------------
  http::Header request;
  std::string request_path = "/";
  std::string request_query;
  std::string request_body;
  std::size_t fake_pending = 0;  // what pending_bytes() reports
  bool write_completes = true;   // false: writes stay pending (a stalled client)

  // --- observed --------------------------------------------------------------------------------
  mutable std::mutex mutex;
  std::condition_variable cv;
  std::optional<http::Response> response;
  std::optional<http::ResponseHead> head;
  std::vector<std::string> chunks;
  bool finished = false;
  bool aborted = false;
  int respond_calls = 0;
  std::optional<http::ResponseHead> upgrade_head;
  std::unique_ptr<PipeStream> client_side;  // the "client" end after upgrade()

  // Plays the client going away.
  void close_client() {
    std::function<void()> callback;
    {
      std::lock_guard lock(mutex);
      closed_ = true;
      callback = std::move(on_close_);
      on_close_ = nullptr;
    }
    if (callback) callback();
  }

  bool wait(const std::function<bool()>& pred,
            std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, pred);
  }
  int status() const {
    std::lock_guard lock(mutex);
    if (response) return response->status;
    if (head) return head->status;
    return 0;
  }
  std::string body() const {
    std::lock_guard lock(mutex);
    if (response) return response->body;
    std::string all;
    for (const auto& c : chunks) all += c;
    return all;
  }
  std::optional<std::string> response_header(const std::string& name) const {
    std::lock_guard lock(mutex);
    const auto* headers = response ? &response->headers : head ? &head->headers : nullptr;
    if (!headers) return std::nullopt;
    for (const auto& [k, v] : *headers) {
      if (k.size() == name.size() &&
          std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) ==
                   std::tolower(static_cast<unsigned char>(b));
          })) {
        return v;
      }
    }
    return std::nullopt;
  }
  bool has_response() const {
    std::lock_guard lock(mutex);
    return response.has_value() || finished;
  }

  // --- http::Exchange --------------------------------------------------------------------------
  const http::Header& header() const override { return request; }
  std::string_view path() const override { return request_path; }
  std::string_view query() const override { return request_query; }
  std::string query_param(std::string_view name) const override {
    const auto v = find_param(name);
    return v ? *v : std::string();
  }
  bool has_query_param(std::string_view name) const override {
    return find_param(name).has_value();
  }
  std::string remote_address() const override { return "127.0.0.1:40000"; }
  bool is_tls() const override { return false; }
  const std::string& request_id() const override { return request_id_; }

  void read_body(std::size_t limit, std::function<void(api::Expected<std::string>)> done) override {
    if (request_body.size() > limit) {
      done(api::ApiError::too_large("request body too large"));
      return;
    }
    boost::asio::post(executor_, [done, body = request_body] { done(body); });
  }
  void read_body_some(std::function<void(bool, std::string, bool)> done) override {
    boost::asio::post(executor_, [done, body = request_body] { done(true, body, true); });
  }

  void respond(http::Response r) override {
    std::lock_guard lock(mutex);
    ++respond_calls;
    response = std::move(r);
    cv.notify_all();
  }
  void begin_stream(http::ResponseHead h) override {
    std::lock_guard lock(mutex);
    head = std::move(h);
    cv.notify_all();
  }
  void write(std::string chunk, std::function<void(bool)> done) override {
    bool ok = true;
    {
      std::lock_guard lock(mutex);
      ok = !closed_ && !finished;
      if (ok) chunks.push_back(std::move(chunk));
      cv.notify_all();
    }
    if (done && write_completes) boost::asio::post(executor_, [done, ok] { done(ok); });
  }
  std::size_t pending_bytes() const override {
    std::lock_guard lock(mutex);
    return fake_pending;
  }
  void finish() override {
    std::lock_guard lock(mutex);
    finished = true;
    cv.notify_all();
  }
  void abort() override {
    std::lock_guard lock(mutex);
    finished = true;
    aborted = true;
    cv.notify_all();
  }
  void on_close(std::function<void()> callback) override {
    bool call_now = false;
    {
      std::lock_guard lock(mutex);
      if (closed_) {
        call_now = true;
      } else {
        on_close_ = std::move(callback);
      }
    }
    if (call_now && callback) callback();
  }
  bool closed() const override {
    std::lock_guard lock(mutex);
    return closed_;
  }
  void upgrade(http::ResponseHead h,
               std::function<void(std::unique_ptr<http::ByteStream>)> done) override {
    auto [server, client] = PipeStream::make_pair(executor_);
    {
      std::lock_guard lock(mutex);
      upgrade_head = std::move(h);
      client_side = std::move(client);
      cv.notify_all();
    }
    auto holder = std::make_shared<std::unique_ptr<http::ByteStream>>(std::move(server));
    boost::asio::post(executor_, [done, holder] { done(std::move(*holder)); });
  }
  boost::asio::any_io_executor executor() override { return executor_; }

 private:
  std::optional<std::string> find_param(std::string_view name) const {
    std::string_view q = request_query;
    while (!q.empty()) {
      const auto amp = q.find('&');
      std::string_view part = q.substr(0, amp);
      const auto eq = part.find('=');
      if (part.substr(0, eq) == name) {
        return eq == std::string_view::npos ? std::string() : decode(part.substr(eq + 1));
      }
      if (amp == std::string_view::npos) break;
      q.remove_prefix(amp + 1);
    }
    return std::nullopt;
  }
  static std::string decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size()) {
        out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
        i += 2;
      } else if (s[i] == '+') {
        out.push_back(' ');
      } else {
        out.push_back(s[i]);
      }
    }
    return out;
  }

  boost::asio::any_io_executor executor_;
  std::string request_id_ = "test-request";
  bool closed_ = false;
  std::function<void()> on_close_;
};

}  // namespace dpa::testing
