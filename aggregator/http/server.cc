#include "aggregator/http/server.h"

#include "aggregator/http/session.h"
#include "aggregator/http/tls.h"
#include "aggregator/observability/log.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

namespace dpa::http {
namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace {

api::Expected<std::unique_ptr<tcp::acceptor>> listen_on(net::io_context& io,
                                                        const std::string& address, int port) {
  error_code ec;
  auto ip = net::ip::make_address(address, ec);
  if (ec) return api::ApiError::bad_request("invalid bind address \"" + address + "\"");
  tcp::endpoint endpoint(ip, static_cast<unsigned short>(port));
  // The acceptor gets its own strand so shutdown() can close it safely from any thread.
  auto acceptor = std::make_unique<tcp::acceptor>(net::make_strand(io));
  auto where = address + ":" + std::to_string(port);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) return api::ApiError::internal("cannot listen on " + where + ": " + ec.message());
  return acceptor;
}

void do_accept(std::shared_ptr<ServerState> state, tcp::acceptor* acceptor, bool tls) {
  acceptor->async_accept(
      net::make_strand(state->context_for_next_session()),
      [state, acceptor, tls](error_code ec, tcp::socket socket) mutable {
        if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
        if (ec) {
          // EMFILE and friends: keep accepting, the condition is usually transient.
          obs::warn("accept failed", {{"error", ec.message()}});
        } else {
          // One compare-and-swap: a load and a separate add could let two accepts overshoot.
          std::size_t open = state->connections.load();
          bool counted = false;
          while (open < state->options.max_connections &&
                 !(counted = state->connections.compare_exchange_weak(open, open + 1))) {
          }
          if (tls) {
            start_tls_session(state, std::move(socket), counted);
          } else {
            start_plain_session(state, std::move(socket), counted);
          }
        }
        do_accept(std::move(state), acceptor, tls);
      });
}

}  // namespace

Server::Server(net::io_context& io, ServerOptions options, Handler handler)
    : state_(std::make_shared<ServerState>(io, std::move(options), std::move(handler))) {}

Server::~Server() {
  error_code ec;
  if (state_->plain_acceptor) {
    auto* a = state_->plain_acceptor.get();
    net::dispatch(a->get_executor(), [a, keep = state_] {
      error_code ignored;
      a->close(ignored);
    });
  }
  if (state_->tls_acceptor) {
    auto* a = state_->tls_acceptor.get();
    net::dispatch(a->get_executor(), [a, keep = state_] {
      error_code ignored;
      a->close(ignored);
    });
  }
}

void Server::set_session_contexts(std::vector<net::io_context*> contexts) {
  state_->session_contexts = std::move(contexts);
}

void Server::set_observer(std::function<void(const RequestRecord&)> observer) {
  state_->observer = std::move(observer);
}

api::Outcome Server::start() {
  const auto& o = state_->options;
  if (o.secure_port >= 0) {
    auto ctx = make_server_tls_context(o.tls_cert_file, o.tls_key_file, o.client_ca_files);
    if (!ctx) return ctx.error();
    state_->tls = std::move(ctx.value());
  }
  if (o.port >= 0) {
    auto acceptor = listen_on(state_->io, o.bind_address, o.port);
    if (!acceptor) return acceptor.error();
    state_->plain_acceptor = std::move(acceptor.value());
    state_->port = state_->plain_acceptor->local_endpoint().port();
  }
  if (o.secure_port >= 0) {
    auto acceptor = listen_on(state_->io, o.bind_address, o.secure_port);
    if (!acceptor) return acceptor.error();
    state_->tls_acceptor = std::move(acceptor.value());
    state_->secure_port = state_->tls_acceptor->local_endpoint().port();
  }
  if (state_->plain_acceptor) {
    auto* a = state_->plain_acceptor.get();
    net::dispatch(a->get_executor(), [state = state_, a] { do_accept(state, a, false); });
  }
  if (state_->tls_acceptor) {
    auto* a = state_->tls_acceptor.get();
    net::dispatch(a->get_executor(), [state = state_, a] { do_accept(state, a, true); });
  }
  return api::Ok{};
}

api::Outcome Server::reload_tls() {
  const auto& o = state_->options;
  if (o.secure_port < 0) return api::Ok{};
  auto ctx = make_server_tls_context(o.tls_cert_file, o.tls_key_file, o.client_ca_files);
  if (!ctx) return ctx.error();
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->tls = std::move(ctx.value());
  return api::Ok{};
}

int Server::port() const { return state_->port; }
int Server::secure_port() const { return state_->secure_port; }
std::size_t Server::open_connections() const { return state_->connections.load(); }

void Server::shutdown(std::chrono::seconds grace, std::function<void()> done) {
  auto state = state_;
  // The grace timer exists before anything can complete the shutdown (complete_shutdown cancels it).
  state->grace_timer = std::make_shared<net::steady_timer>(state->io, grace);
  state->grace_timer->async_wait([state](error_code ec) {
    if (ec) return;
    std::vector<std::shared_ptr<SessionControl>> remaining;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      for (auto& weak : state->sessions) {
        if (auto s = weak.lock()) remaining.push_back(std::move(s));
      }
    }
    for (auto& s : remaining) s->force_close();
    remaining.clear();
    state->complete_shutdown();
  });
  {
    std::lock_guard<std::mutex> lock(state->mu);
    state->shutdown_done = std::move(done);
  }
  state->shutting_down.store(true);
  for (auto* acceptor : {state->plain_acceptor.get(), state->tls_acceptor.get()}) {
    if (!acceptor) continue;
    net::dispatch(acceptor->get_executor(), [acceptor, state] {
      error_code ignored;
      acceptor->close(ignored);
    });
  }
  std::vector<std::shared_ptr<SessionControl>> live;
  {
    std::lock_guard<std::mutex> lock(state->mu);
    for (auto& weak : state->sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  if (state->connections.load() == 0) {
    state->complete_shutdown();
    return;
  }
  for (auto& s : live) s->begin_shutdown();
  live.clear();
}

}  // namespace dpa::http
