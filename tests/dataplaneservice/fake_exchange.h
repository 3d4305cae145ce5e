// An in-memory http::Exchange for RestHandler tests: builds a request from method/target/headers/
// body, records a whole response or a streamed one (head + chunks), and lets the test play the
// client going away. Thread-safe: the handler answers from the blocking pool and the store thread.
#pragma once

#include "aggregator/http/exchange.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/http/verb.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace dpa::testing {

class FakeExchange : public http::Exchange {
 public:
  FakeExchange(boost::asio::any_io_executor executor, std::string method, std::string target,
               std::string body = "",
               std::vector<std::pair<std::string, std::string>> headers = {})
      : executor_(std::move(executor)), body_(std::move(body)) {
    header_.method_string(method);
    header_.target(target);
    for (auto& [k, v] : headers) header_.set(k, v);
    auto q = target.find('?');
    path_ = target.substr(0, q);
    if (q != std::string::npos) query_ = target.substr(q + 1);
  }

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
  std::string remote_address() const override { return "127.0.0.1:1"; }
  bool is_tls() const override { return false; }
  const std::string& request_id() const override { return id_; }

  void read_body(std::size_t limit,
                 std::function<void(api::Expected<std::string>)> done) override {
    std::string body = body_;
    boost::asio::post(executor_, [limit, body, done] {
      if (body.size() > limit) {
        done(api::ApiError::too_large("limit is " + std::to_string(limit)));
      } else {
        done(body);
      }
    });
  }
  void read_body_some(std::function<void(bool, std::string, bool)> done) override {
    std::string body = body_;
    boost::asio::post(executor_, [body, done] { done(true, body, true); });
  }

  void respond(http::Response response) override {
    std::lock_guard lock(mu_);
    response_ = std::move(response);
    cv_.notify_all();
  }
  void begin_stream(http::ResponseHead head) override {
    std::lock_guard lock(mu_);
    head_ = std::move(head);
    cv_.notify_all();
  }
  void write(std::string chunk, std::function<void(bool)> done) override {
    bool ok;
    {
      std::lock_guard lock(mu_);
      ok = !closed_;
      if (ok) {
        // Split into lines as a watch client reads them.
        buffer_ += chunk;
        std::size_t nl;
        while ((nl = buffer_.find('\n')) != std::string::npos) {
          lines_.push_back(buffer_.substr(0, nl));
          buffer_.erase(0, nl + 1);
        }
      }
      cv_.notify_all();
    }
    if (done) boost::asio::post(executor_, [done, ok] { done(ok); });
  }
  std::size_t pending_bytes() const override { return 0; }
  void finish() override {
    std::lock_guard lock(mu_);
    finished_ = true;
    cv_.notify_all();
  }
  void on_close(std::function<void()> callback) override {
    std::lock_guard lock(mu_);
    on_close_ = std::move(callback);
  }
  bool closed() const override {
    std::lock_guard lock(mu_);
    return closed_;
  }
  void upgrade(http::ResponseHead, std::function<void(std::unique_ptr<http::ByteStream>)>) override {}
  boost::asio::any_io_executor executor() override { return executor_; }

  // --- test side ---
  std::optional<http::Response> wait_response(std::chrono::milliseconds t = std::chrono::seconds(5)) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, t, [&] { return response_.has_value(); });
    return response_;
  }
  bool wait_lines(std::size_t n, std::chrono::milliseconds t = std::chrono::seconds(5)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, t, [&] { return lines_.size() >= n; });
  }
  bool wait_finished(std::chrono::milliseconds t = std::chrono::seconds(5)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, t, [&] { return finished_; });
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }
  std::optional<http::ResponseHead> head() {
    std::lock_guard lock(mu_);
    return head_;
  }
  void client_goes_away() {
    std::function<void()> cb;
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      cb = on_close_;
    }
    if (cb) cb();
  }

 private:
  std::optional<std::string> find_param(std::string_view name) const {
    std::string_view q = query_;
    while (!q.empty()) {
      auto amp = q.find('&');
      std::string_view kv = q.substr(0, amp);
      auto eq = kv.find('=');
      std::string_view k = kv.substr(0, eq);
      if (k == name) {
        std::string v(eq == std::string_view::npos ? "" : kv.substr(eq + 1));
        std::string out;
        for (std::size_t i = 0; i < v.size(); ++i) {
          if (v[i] == '%' && i + 2 < v.size()) {
            out.push_back(static_cast<char>(std::stoi(v.substr(i + 1, 2), nullptr, 16)));
            i += 2;
          } else if (v[i] == '+') {
            out.push_back(' ');
          } else {
            out.push_back(v[i]);
          }
        }
        return out;
      }
      if (amp == std::string_view::npos) break;
      q = q.substr(amp + 1);
    }
    return std::nullopt;
  }

  boost::asio::any_io_executor executor_;
  http::Header header_;
  std::string path_;
  std::string query_;
  std::string body_;
  std::string id_ = "test";
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<http::Response> response_;
  std::optional<http::ResponseHead> head_;
  std::string buffer_;
  std::vector<std::string> lines_;
  bool finished_ = false;
  bool closed_ = false;
  std::function<void()> on_close_;
};

}  // namespace dpa::testing
