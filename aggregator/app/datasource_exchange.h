// The datasource exchange document: the datasources this aggregator serves, as Grafana
// deployments that correlate telemetry share them with each other. A JSON array sorted by uid
// (then type), each entry exactly {"type", "uid", "grafana_uid"}; only fully specified entries
// (uid and type present) are published, and only datasources whose plugin is installed and whose
// DataPlaneService is Available. Same input, same bytes.
//
// Served at GET /apis/aggregation.grafana.app/v0alpha1/datasourceexchange (authorized as a get of
// that resource) and, with --datasource-exchange-file, written to that file whenever it changes,
// atomically (a temporary file in the same directory, fsynced, renamed over), so a reader sees the
// old document or the new one, never part of one. Without --grafana-uid nothing is published: the
// endpoint answers 404 saying so.
#pragma once

#include "aggregator/http/exchange.h"

#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace dpa::app {

inline constexpr const char* kDatasourceExchangePath =
    "/apis/aggregation.grafana.app/v0alpha1/datasourceexchange";

struct ExchangeEntry {
  std::string type;  // the datasource's plugin id
  std::string uid;
};

// The document's bytes for `entries` (any order; incomplete ones are left out).
std::string exchange_document(std::vector<ExchangeEntry> entries, const std::string& grafana_uid);

class DatasourceExchange {
 public:
  DatasourceExchange(std::string grafana_uid, std::string file);

  // Publishes the document for these (already filtered to served) datasources; rewrites the file
  // when the bytes changed. Any thread.
  void update(std::vector<ExchangeEntry> served);
  // The current document; nullopt without a Grafana uid.
  std::optional<std::string> document() const;
  // GET/HEAD: the document (200) or 404 without a Grafana uid; other methods 405.
  void serve(http::Exchange& exchange) const;

 private:
  const std::string grafana_uid_;
  const std::string file_;
  mutable std::mutex mutex_;
  std::string document_;  // with mutex_
  bool written_ = false;  // the file holds document_
};

}  // namespace dpa::app
