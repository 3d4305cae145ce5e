#include "aggregator/app/datasource_exchange.h"

#include "aggregator/app/atomic_file.h"
#include "aggregator/observability/log.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <tuple>

namespace dpa::app {

std::string exchange_document(std::vector<ExchangeEntry> entries, const std::string& grafana_uid) {
  std::erase_if(entries, [](const ExchangeEntry& e) { return e.uid.empty() || e.type.empty(); });
  std::sort(entries.begin(), entries.end(), [](const ExchangeEntry& a, const ExchangeEntry& b) {
    return std::tie(a.uid, a.type) < std::tie(b.uid, b.type);
  });
  entries.erase(std::unique(entries.begin(), entries.end(),
                            [](const ExchangeEntry& a, const ExchangeEntry& b) {
                              return a.uid == b.uid && a.type == b.type;
                            }),
                entries.end());
  // ordered_json keeps the members in the document's order: type, uid, grafana_uid.
  nlohmann::ordered_json doc = nlohmann::ordered_json::array();
  for (const ExchangeEntry& e : entries) {
    doc.push_back({{"type", e.type}, {"uid", e.uid}, {"grafana_uid", grafana_uid}});
  }
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

DatasourceExchange::DatasourceExchange(std::string grafana_uid, std::string file)
    : grafana_uid_(std::move(grafana_uid)), file_(std::move(file)) {}

void DatasourceExchange::update(std::vector<ExchangeEntry> served) {
  if (grafana_uid_.empty()) return;
  std::string document = exchange_document(std::move(served), grafana_uid_);
  std::lock_guard<std::mutex> lock(mutex_);
  if (document == document_ && (written_ || file_.empty())) return;
  document_ = std::move(document);
  written_ = false;
  if (file_.empty()) return;
  auto outcome = write_file_atomically(file_, document_);
  if (!outcome.ok()) {
    // Kept in memory; the next change tries the file again.
    obs::warn("cannot write the datasource exchange file", {{"error", outcome.error().message}});
    return;
  }
  written_ = true;
  obs::info("datasource exchange document written", {{"file", file_}});
}

std::optional<std::string> DatasourceExchange::document() const {
  if (grafana_uid_.empty()) return std::nullopt;
  std::lock_guard<std::mutex> lock(mutex_);
  return document_.empty() ? std::string("[]\n") : document_;
}

void DatasourceExchange::serve(http::Exchange& exchange) const {
  const auto method = exchange.header().method();
  namespace bh = boost::beast::http;
  if (method != bh::verb::get && method != bh::verb::head) {
    http::Response response = http::Response::error(api::ApiError::method_not_allowed(
        std::string(exchange.header().method_string()) + " is not supported on " +
        kDatasourceExchangePath + ": it is read-only"));
    response.headers.emplace_back("Allow", "GET, HEAD");
    return exchange.respond(std::move(response));
  }
  auto document = this->document();
  if (!document) {
    return exchange.respond_error(api::ApiError::not_found(
        "the datasource exchange document is not published: start the aggregator with "
        "--grafana-uid"));
  }
  exchange.respond(http::Response::json(200, std::move(*document)));
}

}  // namespace dpa::app
