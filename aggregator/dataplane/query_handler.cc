// The query path, in Grafana's order (reference §3.3): decode, convert (ToDataSourceQueries),
// reference checks, PluginContext, QueryData, encode. Only the HTTP codes differ (DESIGN §2).
// QueryData runs on the session's own io_context (PluginClient::query_data): the plugin's answer
// is decoded, encoded and written by that I/O thread, with no hand-off between threads, unless it
// is large enough to hold that thread up (then the context's encoder does the encoding).
#include "aggregator/dataplane/query_handler.h"

#include "aggregator/dataplane/time_range.h"
#include "aggregator/frames/arrow_codec.h"
#include "aggregator/frames/json_codec.h"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

namespace dpa::dataplane {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr int kMaxRequestDepth = 256;
constexpr int64_t kDefaultMaxDataPoints = 100;
constexpr int64_t kDefaultIntervalMs = 1000;

// Forwards to nlohmann's DOM builder, remembering the parse error text and refusing absurd depth
// (the DOM and its serialiser recurse).
class BoundedSax {
 public:
  explicit BoundedSax(json& root) : dom_(root, false) {}
  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(json::number_float_t v, const json::string_t& s) { return dom_.number_float(v, s); }
  bool string(json::string_t& v) { return dom_.string(v); }
  bool binary(json::binary_t& v) { return dom_.binary(v); }
  bool start_object(std::size_t n) { return deeper() && dom_.start_object(n); }
  bool key(json::string_t& v) { return dom_.key(v); }
  bool end_object() { --depth_; return dom_.end_object(); }
  bool start_array(std::size_t n) { return deeper() && dom_.start_array(n); }
  bool end_array() { --depth_; return dom_.end_array(); }
  bool parse_error(std::size_t pos, const std::string& token, const nlohmann::detail::exception& ex) {
    error_ = ex.what();
    return dom_.parse_error(pos, token, ex);
  }
  const std::string& error() const { return error_; }
  bool too_deep() const { return too_deep_; }

 private:
  bool deeper() {
    if (++depth_ > kMaxRequestDepth) {
      too_deep_ = true;
      return false;
    }
    return true;
  }
  nlohmann::detail::json_sax_dom_parser<json> dom_;
  int depth_ = 0;
  bool too_deep_ = false;
  std::string error_;
};

api::ApiError field_error(std::size_t index, const char* field, const char* want) {
  std::string where = "queries[" + std::to_string(index) + "]";
  if (*field != '\0') where += std::string(".") + field;
  return api::ApiError::bad_request("invalid request body: " + where + " must be " + want);
}

std::optional<int64_t> as_int(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e18) return static_cast<int64_t>(d);
    return std::nullopt;
  }
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (s.empty()) return std::nullopt;
    int64_t out = 0;
    std::size_t i = s[0] == '-' ? 1 : 0;
    if (i == s.size()) return std::nullopt;
    for (; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9' || out > (int64_t{1} << 58)) return std::nullopt;
      out = out * 10 + (s[i] - '0');
    }
    return s[0] == '-' ? -out : out;
  }
  return std::nullopt;
}

api::Expected<std::optional<DatasourceRef>> decode_ref(const json& v, std::size_t index) {
  if (v.is_null()) return std::optional<DatasourceRef>();
  DatasourceRef ref;
  if (v.is_string()) {  // pre-8.3 form: a bare uid
    ref.uid = v.get<std::string>();
    return std::optional<DatasourceRef>(std::move(ref));
  }
  if (!v.is_object()) return field_error(index, "datasource", "an object or a string");
  for (const auto& [key, field] : {std::pair<const char*, std::string*>{"type", &ref.type},
                                   {"uid", &ref.uid}, {"apiVersion", &ref.api_version}}) {
    auto it = v.find(key);
    if (it == v.end() || it->is_null()) continue;
    if (!it->is_string()) return field_error(index, "datasource", "{type, uid, apiVersion} strings");
    *field = it->get<std::string>();
  }
  return std::optional<DatasourceRef>(std::move(ref));
}

ojson ref_json(const DatasourceRef& ref) {
  ojson o = ojson::object();
  if (!ref.type.empty()) o["type"] = ref.type;
  if (!ref.uid.empty()) o["uid"] = ref.uid;
  if (!ref.api_version.empty()) o["apiVersion"] = ref.api_version;
  return o;
}

}  // namespace

api::Expected<json> decode_first_json_value(std::string_view body) {
  json root;
  BoundedSax sax(root);
  const bool ok = json::sax_parse(body.begin(), body.end(), &sax, nlohmann::detail::input_format_t::json,
                                  /*strict=*/false);
  if (sax.too_deep()) {
    return api::ApiError::bad_request("invalid request body: JSON nested deeper than " +
                                      std::to_string(kMaxRequestDepth) + " levels");
  }
  if (!ok) {
    std::string why = sax.error();
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) why = "EOF (empty body)";
    return api::ApiError::bad_request("invalid request body: " + why);
  }
  return root;
}

api::Expected<ParsedQueryRequest> parse_query_request(std::string_view body, int64_t now) {
  auto decoded = decode_first_json_value(body);
  if (!decoded) return std::move(decoded).error();
  const json& root = *decoded;
  if (!root.is_object()) {
    return api::ApiError::bad_request("invalid request body: expected a JSON object");
  }
  auto text_field = [&](const char* name) -> api::Expected<std::string> {
    auto it = root.find(name);
    if (it == root.end() || it->is_null()) return std::string();
    if (!it->is_string()) {
      return api::ApiError::bad_request(std::string("invalid request body: ") + name +
                                        " must be a string");
    }
    return it->get<std::string>();
  };
  auto from = text_field("from");
  if (!from) return std::move(from).error();
  auto to = text_field("to");
  if (!to) return std::move(to).error();

  std::optional<TimeRange> default_range;
  if (!from->empty()) default_range = parse_time_range(*from, *to, now);

  ParsedQueryRequest out;
  auto qit = root.find("queries");
  if (qit == root.end() || qit->is_null()) return out;
  if (!qit->is_array()) return api::ApiError::bad_request("invalid request body: queries must be an array");

  static const char* const kTyped[] = {"refId", "resultAssertions", "timeRange", "datasource",
                                       "datasourceId", "queryType", "maxDataPoints", "intervalMs",
                                       "hide"};
  std::size_t index = 0;
  for (const json& q : *qit) {
    if (!q.is_object()) return field_error(index, "", "an object");
    pluginv2::DataQuery dq;
    ojson query_json = ojson::object();

    std::string ref_id;
    if (auto it = q.find("refId"); it != q.end() && !it->is_null()) {
      if (!it->is_string()) return field_error(index, "refId", "a string");
      ref_id = it->get<std::string>();
    }
    if (!ref_id.empty()) query_json["refId"] = ref_id;
    if (auto it = q.find("resultAssertions"); it != q.end() && !it->is_null()) {
      if (!it->is_object()) return field_error(index, "resultAssertions", "an object");
      query_json["resultAssertions"] = ojson(*it);
    }

    std::optional<DatasourceRef> ds;
    if (auto it = q.find("datasource"); it != q.end()) {
      auto ref = decode_ref(*it, index);
      if (!ref) return std::move(ref).error();
      ds = std::move(ref.value());
    }
    if (index == 0) out.reference = ds;
    if (ds && out.reference) {
      if (ds->type != out.reference->type) {
        return api::ApiError::bad_request("expect same datasource types");
      }
      if (ds->uid != out.reference->uid) return api::ApiError::bad_request("expect same datasource UID");
    }
    if (ds) query_json["datasource"] = ref_json(*ds);

    if (auto it = q.find("datasourceId"); it != q.end() && !it->is_null()) {
      auto id = as_int(*it);
      if (!id || it->is_string()) return field_error(index, "datasourceId", "an integer");
      if (*id > 0) query_json["datasourceId"] = *id;
    }
    std::string query_type;
    if (auto it = q.find("queryType"); it != q.end() && !it->is_null()) {
      if (!it->is_string()) return field_error(index, "queryType", "a string");
      query_type = it->get<std::string>();
      if (!query_type.empty()) query_json["queryType"] = query_type;
    }
    int64_t max_data_points = 0;
    if (auto it = q.find("maxDataPoints"); it != q.end() && !it->is_null()) {
      auto n = as_int(*it);
      if (!n) return field_error(index, "maxDataPoints", "an integer (or a string holding one)");
      max_data_points = *n;
      if (max_data_points > 0) query_json["maxDataPoints"] = max_data_points;
    }
    double interval_ms = 0;
    if (auto it = q.find("intervalMs"); it != q.end() && !it->is_null()) {
      if (!it->is_number()) return field_error(index, "intervalMs", "a number");
      interval_ms = it->get<double>();
      if (interval_ms > 0) query_json["intervalMs"] = ojson(*it);
    }
    if (auto it = q.find("hide"); it != q.end() && !it->is_null()) {
      if (!it->is_boolean()) return field_error(index, "hide", "a boolean");
      if (it->get<bool>()) query_json["hide"] = true;
    }
    std::optional<TimeRange> own_range;
    if (auto it = q.find("timeRange"); it != q.end() && !it->is_null()) {
      if (!it->is_object()) return field_error(index, "timeRange", "an object");
      std::string tr_from, tr_to;
      for (const auto& [key, field] : {std::pair<const char*, std::string*>{"from", &tr_from},
                                       {"to", &tr_to}}) {
        auto f = it->find(key);
        if (f == it->end() || f->is_null()) continue;
        if (!f->is_string()) return field_error(index, "timeRange", "{from, to} strings");
        *field = f->get<std::string>();
      }
      own_range = parse_time_range(tr_from, tr_to, now);
    }
    // Everything else is the plugin's own query model: kept verbatim, keys sorted (json is a
    // sorted map), timeRange removed (it travels in DataQuery.timeRange).
    for (auto it = q.begin(); it != q.end(); ++it) {
      if (std::find_if(std::begin(kTyped), std::end(kTyped),
                       [&](const char* k) { return it.key() == k; }) != std::end(kTyped)) {
        continue;
      }
      query_json[it.key()] = ojson(it.value());
    }

    dq.set_refid(ref_id);
    dq.set_querytype(query_type);
    dq.set_maxdatapoints(max_data_points > 0 ? max_data_points : kDefaultMaxDataPoints);
    dq.set_intervalms(interval_ms > 0 ? static_cast<int64_t>(interval_ms) : kDefaultIntervalMs);
    const TimeRange range = own_range ? *own_range : default_range.value_or(TimeRange{});
    dq.mutable_timerange()->set_fromepochms(range.from_ms);
    dq.mutable_timerange()->set_toepochms(range.to_ms);
    dq.set_json(query_json.dump(-1, ' ', false, ojson::error_handler_t::replace));
    out.queries.push_back(std::move(dq));
    ++index;
  }
  return out;
}

api::Outcome check_reference(const ParsedQueryRequest& request, const std::string& plugin_id,
                             const std::string& path_uid) {
  if (!request.reference) return api::ApiError::bad_request("missing datasource reference");
  if (request.reference->type != plugin_id) return api::ApiError::bad_request("invalid datasource type");
  if (request.reference->uid != path_uid) return api::ApiError::bad_request("invalid datasource UID");
  return api::Ok{};
}

void append_go_string(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            out += "\\u00";
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0xF]);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    // Validate one UTF-8 sequence.
    std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    bool valid = len > 0 && c <= 0xF4 && i + len <= s.size();
    uint32_t cp = 0;
    if (valid) {
      cp = c & (0x7F >> len);
      for (std::size_t k = 1; k < len; ++k) {
        const auto cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xC0) != 0x80) {
          valid = false;
          break;
        }
        cp = (cp << 6) | (cc & 0x3F);
      }
      if (valid && ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
                    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))) {
        valid = false;
      }
    }
    if (!valid) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (cp == 0x2028 || cp == 0x2029) {
      out += cp == 0x2028 ? "\\u2028" : "\\u2029";
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  out.push_back('"');
}

std::string indent_json(std::string_view in) {
  // Hot path (every query response): strings and scalars are copied as whole runs, and the
  // output grows through a raw cursor instead of one push_back per byte.
  std::string out;
  out.resize(in.size() + in.size() / 2 + 64);
  std::size_t at = 0;
  auto reserve = [&](std::size_t extra) {
    if (at + extra > out.size()) out.resize(std::max(out.size() * 2, at + extra));
  };
  auto put = [&](const char* data, std::size_t n) {
    reserve(n);
    std::memcpy(out.data() + at, data, n);
    at += n;
  };
  int depth = 0;
  auto newline = [&](int d) {
    const auto spaces = static_cast<std::size_t>(std::max(d, 0)) * 2;
    reserve(spaces + 1);
    out[at++] = '\n';
    std::memset(out.data() + at, ' ', spaces);
    at += spaces;
  };
  const std::size_t size = in.size();
  std::size_t i = 0;
  while (i < size) {
    const char c = in[i];
    switch (c) {
      case '"': {  // a whole string, escapes included
        std::size_t j = i + 1;
        while (j < size && in[j] != '"') j += in[j] == '\\' ? 2 : 1;
        j = std::min(j + 1, size);
        put(in.data() + i, j - i);
        i = j;
        continue;
      }
      case '{':
      case '[':
        if (i + 1 < size && (in[i + 1] == '}' || in[i + 1] == ']')) {
          put(in.data() + i, 2);  // Go's Indent keeps empty {} and [] on one line
          i += 2;
          continue;
        }
        put(&c, 1);
        newline(++depth);
        break;
      case '}':
      case ']':
        newline(--depth);
        put(&c, 1);
        break;
      case ',':
        put(&c, 1);
        newline(depth);
        break;
      case ':':
        put(": ", 2);
        break;
      case ' ': case '\t': case '\r': case '\n':
        break;
      default: {  // a number, true, false or null: up to the next delimiter
        std::size_t j = i + 1;
        while (j < size && in[j] != ',' && in[j] != '}' && in[j] != ']' && in[j] != ' ' &&
               in[j] != '\n' && in[j] != '\t' && in[j] != '\r' && in[j] != ':') {
          ++j;
        }
        put(in.data() + i, j - i);
        i = j;
        continue;
      }
    }
    ++i;
  }
  out.resize(at);
  return out;
}

api::Expected<std::string> encode_query_response(const pluginv2::QueryDataResponse& response) {
  std::map<std::string, const pluginv2::DataResponse*> sorted;
  for (const auto& [ref_id, dr] : response.responses()) sorted.emplace(ref_id, &dr);

  std::string out = "{\"results\":{";
  bool first = true;
  for (const auto& [ref_id, dr] : sorted) {
    if (!first) out.push_back(',');
    first = false;
    append_go_string(out, ref_id);
    out += ":{";
    const bool has_error = !dr->error().empty();
    if (has_error) {
      out += "\"error\":";
      append_go_string(out, dr->error());
      out += ",\"errorSource\":";
      append_go_string(out, dr->errorsource());
      out.push_back(',');
    }
    // The host SDK treats a status outside 100-599 (0 included) as unknown: 200 without an
    // error, else 500 (reference protocol §1.4, aggregator §3.5).
    int status = dr->status();
    if (status < 100 || status > 599) status = has_error ? 500 : 200;
    out += "\"status\":" + std::to_string(status);
    // The host SDK always materialises the frame list (UnmarshalArrowFrames), so `frames` is
    // present, possibly empty.
    out += ",\"frames\":[";
    for (int i = 0; i < dr->frames_size(); ++i) {
      if (i > 0) out.push_back(',');
      const std::string& bytes = dr->frames(i);
      if (dr->format() == pluginv2::JSON) {
        auto parsed = decode_first_json_value(bytes);
        if (!parsed) {
          return api::ApiError::bad_gateway("invalid JSON frame from plugin: " +
                                            parsed.error().message);
        }
        auto frame = frames::from_json(*parsed);
        if (!frame) return std::move(frame).error();
        frames::append_json(*frame, out);
      } else {
        auto frame = frames::read_arrow(bytes);
        if (!frame) return std::move(frame).error();
        frames::append_json(*frame, out);
      }
    }
    out += "]}";
  }
  out += "}}";
  return indent_json(out);
}

namespace {

// Replies up to this size are encoded where they arrive (tens of microseconds); larger ones go to
// the context's encoder.
constexpr std::size_t kInlineEncodeBytes = 64 << 10;

void respond_with(http::Exchange& exchange, const pluginv2::QueryDataResponse& response) {
  auto encoded = encode_query_response(response);
  if (!encoded) return exchange.respond_error(encoded.error());
  exchange.respond(http::Response::json(200, std::move(encoded.value())));
}

}  // namespace

void handle_query(std::shared_ptr<const DataPlaneContext> context,
                  std::shared_ptr<http::Exchange> exchange, RouteMatch match) {
  auto timeout = request_timeout(*exchange, context->options.query_timeout,
                                 context->options.max_timeout);
  if (!timeout) return exchange->respond_error(timeout.error());
  const std::size_t limit = context->options.max_body_bytes;
  exchange->read_body(limit, [context, exchange, match = std::move(match),
                              timeout = *timeout](api::Expected<std::string> body) {
    if (!body) return exchange->respond_error(body.error());
    auto parsed = parse_query_request(*body, now_ms());
    if (!parsed) return exchange->respond_error(parsed.error());
    if (auto ok = check_reference(*parsed, match.service->spec.plugin_id, match.datasource_uid);
        !ok) {
      return exchange->respond_error(ok.error());
    }
    auto target = resolve_target(*context, match);
    if (!target) return exchange->respond_error(target.error());

    pluginv2::QueryDataRequest request;
    *request.mutable_plugincontext() = std::move(target->plugin_context);
    for (auto& q : parsed->queries) *request.add_queries() = std::move(q);
    request.set_format(pluginv2::ARROW);
    target->client->query_data(
        std::move(request), {timeout, exchange->trace_context()}, exchange->executor(),
        [exchange,
         encoder = context->encoder](api::Expected<pluginv2::QueryDataResponse> response) {
          if (!response) return exchange->respond_error(response.error());
          if (encoder && response->ByteSizeLong() > kInlineEncodeBytes) {
            return boost::asio::post(encoder, [exchange, response = std::move(*response)] {
              respond_with(*exchange, response);
            });
          }
          respond_with(*exchange, *response);
        });
  });
}

}  // namespace dpa::dataplane
