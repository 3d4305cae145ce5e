// Authentication as kube-apiserver does it (reference §0-§2): bearer tokens from a token file,
// client certificates, trusted front-proxy headers, and the chain that tries them in order.
#include "aggregator/auth/auth.h"

#include "aggregator/apimachinery/base64url.h"
#include "aggregator/auth/header_text.h"
#include "aggregator/frames/utf8.h"
#include "aggregator/http/wire.h"
#include "aggregator/observability/log.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <utility>

namespace dpa::auth {
namespace {

using Kind = AuthnResult::Kind;

constexpr std::string_view kExtraSpaceWarning =
    "the provided Authorization header contains extra space before the bearer token, and is "
    "ignored";
constexpr const char* kCredentialIdKey = "authentication.kubernetes.io/credential-id";

// A `Warning` header value as kube-apiserver writes it: code 299, no agent, the text quoted.
std::string warning_value(std::string_view text) {
  std::string out = "299 - \"";
  for (char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string_view trim_space(std::string_view s) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string> split(std::string_view s, char separator) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    std::size_t end = s.find(separator, start);
    out.emplace_back(s.substr(start, end == std::string_view::npos ? s.npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

// --- bearer tokens -------------------------------------------------------------------------------

using Digest = std::array<unsigned char, 32>;

Digest sha256(std::string_view text) {
  Digest digest{};
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr);
  return digest;
}

// The table is keyed by SHA-256(token), never by the token: the bucket a lookup visits depends on
// the digest of what the client sent, which tells it nothing about the tokens we hold, and the
// comparison that decides a match is CRYPTO_memcmp, which does not stop at the first differing
// byte (a token's prefix cannot be guessed from response times).
struct DigestHash {
  std::size_t operator()(const Digest& digest) const {
    std::size_t h = 0;
    std::memcpy(&h, digest.data(), sizeof h);
    return h;
  }
};
struct DigestEqual {
  bool operator()(const Digest& a, const Digest& b) const {
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
  }
};
using TokenTable = std::unordered_map<Digest, UserInfo, DigestHash, DigestEqual>;

class TokenAuthenticator final : public Authenticator {
 public:
  explicit TokenAuthenticator(TokenTable users) : users_(std::move(users)) {}

  void authenticate(const Credentials& credentials,
                    std::function<void(AuthnResult)> done) const override {
    AuthnResult result;
    if (credentials.header == nullptr) return done(std::move(result));
    std::string warning;
    std::optional<std::string> token = bearer_token(*credentials.header, &warning);
    if (!warning.empty()) result.warnings.push_back(warning_value(warning));
    if (!token) return done(std::move(result));
    auto it = users_.find(sha256(*token));
    if (it == users_.end()) {
      // A wrong token is an error, not "no opinion": the request must not fall back to anonymous.
      result.kind = Kind::kFailed;
      result.error = "invalid bearer token";
    } else {
      result.kind = Kind::kAuthenticated;
      result.user = it->second;
    }
    done(std::move(result));
  }

 private:
  TokenTable users_;
};

// Go's encoding/csv as kube's token file reader configures it (RFC 4180, no comments, no space
// trimming, any number of fields per record). Errors read like Go's ParseError.
class CsvReader {
 public:
  explicit CsvReader(std::string_view text) : text_(text) {}

  // The next record; false at the end of the text or on an error (then `error` is set).
  bool next(std::vector<std::string>& fields, int& record_line, std::string& error) {
    fields.clear();
    std::string line;
    do {
      line = read_line();
      if (line.empty()) return false;
    } while (line == "\n");  // blank lines are no records
    record_line = line_;
    std::string_view rest = line;
    std::size_t column = 1;
    while (true) {
      if (rest.empty() || rest.front() != '"') {
        std::size_t comma = rest.find(',');
        std::string_view field = rest.substr(0, comma);
        if (comma == std::string_view::npos && !field.empty() && field.back() == '\n') {
          field.remove_suffix(1);
        }
        if (std::size_t quote = field.find('"'); quote != std::string_view::npos) {
          error = parse_error(record_line, column + quote, "bare \" in non-quoted-field");
          return false;
        }
        fields.emplace_back(field);
        if (comma == std::string_view::npos) return true;
        rest.remove_prefix(comma + 1);
        column += comma + 1;
        continue;
      }
      std::string field;
      rest.remove_prefix(1);
      column += 1;
      while (true) {
        std::size_t quote = rest.find('"');
        if (quote != std::string_view::npos) {
          field.append(rest.substr(0, quote));
          rest.remove_prefix(quote + 1);
          column += quote + 1;
          if (!rest.empty() && rest.front() == '"') {  // "" is one literal quote
            field.push_back('"');
            rest.remove_prefix(1);
            column += 1;
          } else if (!rest.empty() && rest.front() == ',') {
            rest.remove_prefix(1);
            column += 1;
            fields.push_back(std::move(field));
            break;
          } else if (rest.empty() || rest == "\n") {
            fields.push_back(std::move(field));
            return true;
          } else {
            error =
                parse_error(record_line, column - 1, "extraneous or missing \" in quoted-field");
            return false;
          }
        } else if (!rest.empty()) {
          // A quoted field goes on over the line break.
          field.append(rest);
          column += rest.size();
          line = read_line();
          rest = line;
          if (!line.empty()) column = 1;
        } else {
          error = parse_error(record_line, column, "extraneous or missing \" in quoted-field");
          return false;
        }
      }
    }
  }

 private:
  // One line with its "\n" ("\r\n" read as "\n"); empty at the end of the text.
  std::string read_line() {
    if (offset_ >= text_.size()) return {};
    std::size_t newline = text_.find('\n', offset_);
    std::size_t end = newline == std::string_view::npos ? text_.size() : newline + 1;
    std::string line(text_.substr(offset_, end - offset_));
    offset_ = end;
    ++line_;
    if (line.size() >= 2 && line.compare(line.size() - 2, 2, "\r\n") == 0) {
      line.erase(line.size() - 2, 1);
    } else if (newline == std::string_view::npos && line.back() == '\r') {
      line.pop_back();
    }
    return line;
  }

  std::string parse_error(int record_line, std::size_t column, std::string_view what) const {
    std::string out;
    if (record_line != line_) out = "record on line " + std::to_string(record_line) + "; ";
    return out + "parse error on line " + std::to_string(line_) + ", column " +
           std::to_string(column) + ": " + std::string(what);
  }

  std::string_view text_;
  std::size_t offset_ = 0;
  int line_ = 0;
};

// --- client certificates -------------------------------------------------------------------------

struct StoreFree {
  void operator()(X509_STORE* store) const { X509_STORE_free(store); }
};
struct StoreContextFree {
  void operator()(X509_STORE_CTX* context) const { X509_STORE_CTX_free(context); }
};
struct CertificateStackFree {
  void operator()(STACK_OF(X509) * stack) const { sk_X509_free(stack); }
};

std::string openssl_reason() {
  unsigned long code = ERR_peek_last_error();
  const char* reason = code != 0 ? ERR_reason_error_string(code) : nullptr;
  ERR_clear_error();
  return reason != nullptr ? reason : "unknown error";
}

// Verifies a presented chain against one CA bundle as kube's x509 verification does: usage
// clientAuth, the extra certificates as untrusted intermediates, and every certificate of the
// bundle a trust anchor (Go does not insist on reaching a self-signed root, hence PARTIAL_CHAIN).
// X509_STORE is safe to share between threads; each verification has its own context.
class ClientCertificateVerifier {
 public:
  static api::Expected<std::shared_ptr<const ClientCertificateVerifier>> load(
      const std::string& ca_file) {
    if (std::filesystem::is_directory(ca_file)) {
      return api::ApiError::bad_request("unable to load client CA file \"" + ca_file +
                                        "\": is a directory");
    }
    std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
    ERR_clear_error();
    if (!store || X509_STORE_load_file(store.get(), ca_file.c_str()) != 1) {
      return api::ApiError::bad_request("unable to load client CA file \"" + ca_file +
                                        "\": " + openssl_reason());
    }
    X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
    return std::shared_ptr<const ClientCertificateVerifier>(
        new ClientCertificateVerifier(std::move(store)));
  }

  // Empty when the chain verifies; otherwise why it does not.
  std::string verify(const http::PeerCertificates& certificates) const {
    std::unique_ptr<STACK_OF(X509), CertificateStackFree> untrusted(sk_X509_new_null());
    std::unique_ptr<X509_STORE_CTX, StoreContextFree> context(X509_STORE_CTX_new());
    if (!untrusted || !context) return "out of memory";
    for (const auto& intermediate : certificates.intermediates) {
      if (intermediate) sk_X509_push(untrusted.get(), intermediate.get());
    }
    std::string why;
    if (X509_STORE_CTX_init(context.get(), store_.get(), certificates.leaf.get(),
                            untrusted.get()) != 1) {
      why = "cannot start verification: " + openssl_reason();
    } else {
      X509_STORE_CTX_set_purpose(context.get(), X509_PURPOSE_SSL_CLIENT);
      if (X509_verify_cert(context.get()) != 1) {
        why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(context.get()));
      }
    }
    // Leave no error behind on this I/O thread's queue: the next TLS read checks it.
    ERR_clear_error();
    return why;
  }

 private:
  explicit ClientCertificateVerifier(std::unique_ptr<X509_STORE, StoreFree> store)
      : store_(std::move(store)) {}

  std::unique_ptr<X509_STORE, StoreFree> store_;
};

struct Subject {
  std::string common_name;  // the last CN, as Go's pkix.Name keeps it
  std::vector<std::string> organizations;
  std::vector<std::string> uids;
};

Subject subject_of(X509* certificate) {
  Subject subject;
  const X509_NAME* name = X509_get_subject_name(certificate);
  for (int i = 0; name != nullptr && i < X509_NAME_entry_count(name); ++i) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    if (nid != NID_commonName && nid != NID_organizationName && nid != NID_userId) continue;
    unsigned char* utf8 = nullptr;
    int size = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
    if (size < 0) continue;
    std::string value(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(size));
    OPENSSL_free(utf8);
    if (nid == NID_commonName) subject.common_name = std::move(value);
    if (nid == NID_organizationName) subject.organizations.push_back(std::move(value));
    if (nid == NID_userId) subject.uids.push_back(std::move(value));
  }
  ERR_clear_error();
  return subject;
}

// For log lines: which certificate failed.
std::string describe(X509* certificate) {
  std::string out = "CN=" + subject_of(certificate).common_name;
  if (const ASN1_INTEGER* serial = X509_get0_serialNumber(certificate)) {
    if (BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr)) {
      if (char* hex = BN_bn2hex(bn)) {
        out += ", SN=" + std::string(hex);
        OPENSSL_free(hex);
      }
      BN_free(bn);
    }
  }
  return out;
}

// "X509SHA256=<hex of the DER's SHA-256>": kube's credential id for a certificate (since 1.32).
std::string credential_id(X509* certificate) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (X509_digest(certificate, EVP_sha256(), digest, &size) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "X509SHA256=";
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

class X509Authenticator final : public Authenticator {
 public:
  explicit X509Authenticator(std::shared_ptr<const ClientCertificateVerifier> verifier)
      : verifier_(std::move(verifier)) {}

  void authenticate(const Credentials& credentials,
                    std::function<void(AuthnResult)> done) const override {
    AuthnResult result;
    const http::PeerCertificates* certificates = credentials.client_certificate;
    if (certificates == nullptr || !certificates->leaf) return done(std::move(result));
    X509* leaf = certificates->leaf.get();
    if (std::string why = verifier_->verify(*certificates); !why.empty()) {
      result.kind = Kind::kFailed;
      result.error = "verifying certificate " + describe(leaf) + " failed: " + why;
      return done(std::move(result));
    }
    Subject subject = subject_of(leaf);
    if (subject.common_name.empty()) return done(std::move(result));
    // The UID attribute (kube 1.33+): at most one, and not empty.
    if (subject.uids.size() > 1) {
      result.kind = Kind::kFailed;
      result.error = "expected 1 UID, but found multiple: [";
      for (std::size_t i = 0; i < subject.uids.size(); ++i) {
        result.error += (i > 0 ? " " : "") + subject.uids[i];
      }
      result.error += "]";
      return done(std::move(result));
    }
    if (subject.uids.size() == 1 && subject.uids.front().empty()) {
      result.kind = Kind::kFailed;
      result.error = "UID cannot be an empty string";
      return done(std::move(result));
    }
    result.kind = Kind::kAuthenticated;
    result.user.name = std::move(subject.common_name);
    if (!subject.uids.empty()) result.user.uid = std::move(subject.uids.front());
    result.user.groups = std::move(subject.organizations);
    result.user.extra[kCredentialIdKey] = {credential_id(leaf)};
    done(std::move(result));
  }

 private:
  std::shared_ptr<const ClientCertificateVerifier> verifier_;
};

// --- front-proxy request headers -----------------------------------------------------------------

class RequestHeaderAuthenticator final : public Authenticator {
 public:
  RequestHeaderAuthenticator(RequestHeaderOptions options,
                             std::shared_ptr<const ClientCertificateVerifier> verifier)
      : options_(std::move(options)), verifier_(std::move(verifier)) {}

  void authenticate(const Credentials& credentials,
                    std::function<void(AuthnResult)> done) const override {
    AuthnResult result;
    const http::PeerCertificates* certificates = credentials.client_certificate;
    if (certificates == nullptr || !certificates->leaf) return done(std::move(result));
    // Only a proxy holding a certificate from this CA may speak for someone else.
    if (std::string why = verifier_->verify(*certificates); !why.empty()) {
      result.kind = Kind::kFailed;
      result.error =
          "verifying certificate " + describe(certificates->leaf.get()) + " failed: " + why;
      return done(std::move(result));
    }
    if (!options_.allowed_names.empty()) {
      std::string cn = subject_of(certificates->leaf.get()).common_name;
      const auto& allowed = options_.allowed_names;
      if (std::find(allowed.begin(), allowed.end(), cn) == allowed.end()) {
        result.kind = Kind::kFailed;
        result.error = "x509: subject with cn=" + cn + " is not in the allowed list";
        return done(std::move(result));
      }
    }
    if (credentials.header == nullptr) return done(std::move(result));
    const http::Header& header = *credentials.header;
    std::string name = first_value(header, options_.username_headers);
    if (name.empty()) return done(std::move(result));
    result.kind = Kind::kAuthenticated;
    result.user.name = std::move(name);
    result.user.uid = first_value(header, options_.uid_headers);
    // Every value is one group: a proxy sends one header line per group, commas included.
    for (const auto& group_header : options_.group_headers) {
      auto [begin, end] = header.equal_range(group_header);
      for (auto it = begin; it != end; ++it) {
        if (!it->value().empty()) result.user.groups.emplace_back(it->value());
      }
    }
    for (const auto& prefix : options_.extra_headers_prefix) {
      for (const auto& field : header) {
        std::string_view field_name = field.name_string();
        if (!detail::starts_with_ignoring_case(field_name, prefix)) continue;
        result.user.extra[detail::extra_key(field_name.substr(prefix.size()))].emplace_back(
            field.value());
      }
    }
    done(std::move(result));
  }

 private:
  // The first listed header whose first value is not empty (Go's Header.Get per name).
  static std::string first_value(const http::Header& header,
                                 const std::vector<std::string>& names) {
    for (const auto& name : names) {
      auto it = header.find(name);
      if (it != header.end() && !it->value().empty()) return std::string(it->value());
    }
    return {};
  }

  RequestHeaderOptions options_;
  std::shared_ptr<const ClientCertificateVerifier> verifier_;
};

// --- the chain -----------------------------------------------------------------------------------

class AuthenticatorChain final : public Authenticator {
 public:
  AuthenticatorChain(std::vector<std::shared_ptr<const Authenticator>> authenticators,
                     bool anonymous)
      : authenticators_(std::make_shared<const std::vector<std::shared_ptr<const Authenticator>>>(
            std::move(authenticators))),
        anonymous_(anonymous) {}

  void authenticate(const Credentials& credentials,
                    std::function<void(AuthnResult)> done) const override {
    auto run = std::make_shared<Run>();
    run->authenticators = authenticators_;
    run->credentials = credentials;
    run->anonymous = anonymous_;
    run->done = std::move(done);
    step(std::move(run));
  }

 private:
  // One authentication in progress. It owns everything the steps need, so an authenticator that
  // answers later (a webhook) may do so after the chain itself is gone.
  struct Run {
    std::shared_ptr<const std::vector<std::shared_ptr<const Authenticator>>> authenticators;
    Credentials credentials;
    bool anonymous = false;
    std::function<void(AuthnResult)> done;
    std::size_t next = 0;
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
  };

  // Each authenticator is started from the previous one's completion, so it does not matter
  // whether that came inline or later on another thread. Inline completions nest one frame per
  // authenticator, a handful at most.
  static void step(std::shared_ptr<Run> run) {
    if (run->next == run->authenticators->size()) return finish(*run);
    const Authenticator& current = *(*run->authenticators)[run->next++];
    current.authenticate(run->credentials, [run](AuthnResult result) mutable {
      for (auto& warning : result.warnings) {
        // Several token authenticators read the same header: say it once, as kube's recorder.
        auto& all = run->warnings;
        if (std::find(all.begin(), all.end(), warning) == all.end()) all.push_back(warning);
      }
      if (result.kind == Kind::kAuthenticated) {
        add_authenticated_group(result.user);
        result.warnings = std::move(run->warnings);
        result.error.clear();
        return run->done(std::move(result));
      }
      if (result.kind == Kind::kFailed) run->errors.push_back(std::move(result.error));
      step(std::move(run));
    });
  }

  static void finish(Run& run) {
    AuthnResult result;
    result.warnings = std::move(run.warnings);
    if (!run.errors.empty()) {
      // A bad credential is never anonymous: the client must learn that it is wrong.
      result.kind = Kind::kFailed;
      result.error = detail::aggregate_errors(run.errors);
    } else if (run.anonymous) {
      result.kind = Kind::kAuthenticated;
      result.user.name = kAnonymousUser;
      result.user.groups = {kSystemUnauthenticated};
    }
    run.done(std::move(result));
  }

  static void add_authenticated_group(UserInfo& user) {
    if (user.name == kAnonymousUser) return;
    if (user.in_group(kSystemAuthenticated) || user.in_group(kSystemUnauthenticated)) return;
    user.groups.emplace_back(kSystemAuthenticated);
  }

  std::shared_ptr<const std::vector<std::shared_ptr<const Authenticator>>> authenticators_;
  bool anonymous_;
};

}  // namespace

bool UserInfo::in_group(std::string_view group) const {
  return std::find(groups.begin(), groups.end(), group) != groups.end();
}

std::optional<std::string> bearer_token(const http::Header& header, std::string* warning) {
  auto it = header.find(boost::beast::http::field::authorization);
  if (it == header.end()) return std::nullopt;
  std::string_view value = trim_space(it->value());
  // kube splits on single spaces into at most three parts: scheme, token, ignored rest.
  std::size_t space = value.find(' ');
  if (space == std::string_view::npos || !http::iequals(value.substr(0, space), "bearer")) {
    return std::nullopt;
  }
  std::string_view rest = value.substr(space + 1);
  std::size_t next_space = rest.find(' ');
  std::string_view token = rest.substr(0, next_space);
  if (token.empty()) {
    if (next_space != std::string_view::npos && warning != nullptr) {
      *warning = kExtraSpaceWarning;
    }
    return std::nullopt;
  }
  return std::string(token);
}

api::Expected<std::shared_ptr<const Authenticator>> load_token_file(const std::string& path) {
  const std::string quoted = "'" + path + "'";
  if (std::filesystem::is_directory(path)) {
    return api::ApiError::bad_request("cannot read token file " + quoted + ": is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return api::ApiError::bad_request("cannot read token file " + quoted + ": " +
                                      std::strerror(errno));
  }
  std::ostringstream content;
  content << in.rdbuf();
  const std::string text = content.str();

  TokenTable users;
  CsvReader reader(text);
  std::vector<std::string> fields;
  int line = 0;
  int record_number = 0;
  std::string error;
  while (reader.next(fields, line, error)) {
    if (fields.size() < 3) {
      return api::ApiError::bad_request(
          "token file " + quoted +
          " must have at least 3 columns (token, user name, user uid), found " +
          std::to_string(fields.size()) + " (line " + std::to_string(line) + ")");
    }
    ++record_number;
    if (fields[0].empty()) {
      obs::warn("empty token has been found in token file " + quoted + ", record number '" +
                std::to_string(record_number) + "'");
      continue;
    }
    UserInfo user;
    user.name = fields[1];
    user.uid = fields[2];
    // Split untrimmed, as kube does: `tok,alice,42,"dev,ops"` is two groups; an empty fourth
    // field is one group "".
    if (fields.size() >= 4) user.groups = split(fields[3], ',');
    auto [entry, inserted] = users.insert_or_assign(sha256(fields[0]), std::move(user));
    if (!inserted) {
      obs::warn("duplicate token has been found in token file " + quoted + ", record number '" +
                std::to_string(record_number) + "'");
    }
  }
  if (!error.empty()) return api::ApiError::bad_request("token file " + quoted + ": " + error);
  return std::shared_ptr<const Authenticator>(
      std::make_shared<TokenAuthenticator>(std::move(users)));
}

std::shared_ptr<const Authenticator> make_token_authenticator(std::vector<StaticToken> tokens) {
  TokenTable users;
  for (auto& token : tokens) {
    // bearer_token() never yields an empty token, so such an entry could only be dead weight.
    if (token.token.empty()) continue;
    users.insert_or_assign(sha256(token.token), std::move(token.user));
  }
  return std::make_shared<TokenAuthenticator>(std::move(users));
}

namespace {

// Every Sec-WebSocket-Protocol value of every such header, trimmed, in order (RFC 6455 §11.3.4:
// several headers are one comma-separated list).
std::vector<std::string_view> offered_protocols(const http::Header& header) {
  std::vector<std::string_view> out;
  auto [it, end] = header.equal_range(boost::beast::http::field::sec_websocket_protocol);
  for (; it != end; ++it) {
    std::string_view list = it->value();
    while (true) {
      const std::size_t comma = list.find(',');
      std::string_view item = trim_space(list.substr(0, comma));
      out.push_back(item);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return out;
}

bool is_token_protocol(std::string_view protocol) {
  return protocol.substr(0, kWebSocketBearerProtocolPrefix.size()) == kWebSocketBearerProtocolPrefix;
}

class WebSocketProtocolAuthenticator final : public Authenticator {
 public:
  explicit WebSocketProtocolAuthenticator(std::shared_ptr<const Authenticator> tokens)
      : tokens_(std::move(tokens)) {}

  void authenticate(const Credentials& credentials,
                    std::function<void(AuthnResult)> done) const override {
    AuthnResult result;
    if (credentials.header == nullptr || !http::is_websocket_upgrade(*credentials.header)) {
      return done(std::move(result));
    }
    std::optional<std::string> token;
    bool other_protocol = false;
    for (std::string_view protocol : offered_protocols(*credentials.header)) {
      if (!is_token_protocol(protocol)) {
        other_protocol = true;
        continue;
      }
      result.kind = AuthnResult::Kind::kFailed;
      if (token) {
        result.error = "multiple base64.bearer.authorization tokens specified";
        return done(std::move(result));
      }
      token = api::base64url_decode(protocol.substr(kWebSocketBearerProtocolPrefix.size()));
      if (!token) {
        result.error = "invalid base64.bearer.authorization token encoding";
        return done(std::move(result));
      }
      if (!frames::is_valid_utf8(*token)) {
        result.error = "invalid base64.bearer.authorization token: contains non UTF-8-encoded runes";
        return done(std::move(result));
      }
    }
    if (!token || token->empty()) return done(AuthnResult{});
    if (!other_protocol) {
      // The server must answer with a subprotocol, and never with the one holding the token.
      result.error = "missing additional subprotocol";
      return done(std::move(result));
    }
    // The token authenticators read `Authorization: Bearer`; this header lives as long as their
    // callback, which is how long they may look at it.
    auto header = std::make_shared<http::Header>();
    header->set(boost::beast::http::field::authorization, "Bearer " + *token);
    Credentials bearer{header.get(), nullptr};
    tokens_->authenticate(bearer, [header, done = std::move(done)](AuthnResult result) {
      if (result.kind == AuthnResult::Kind::kNoOpinion) {
        // A token no authenticator knows is wrong, not absent (kube's errToken).
        result.kind = AuthnResult::Kind::kFailed;
        result.error = "invalid bearer token";
      }
      done(std::move(result));
    });
  }

 private:
  std::shared_ptr<const Authenticator> tokens_;
};

}  // namespace

api::Expected<std::shared_ptr<ReloadableAuthenticator>> ReloadableAuthenticator::create(
    Build build) {
  auto first = build();
  if (!first) return first.error();
  return std::make_shared<ReloadableAuthenticator>(std::move(build), std::move(first).value());
}

ReloadableAuthenticator::ReloadableAuthenticator(Build build,
                                                 std::shared_ptr<const Authenticator> first)
    : build_(std::move(build)), current_(std::move(first)) {}

api::Outcome ReloadableAuthenticator::reload() {
  auto next = build_();
  if (!next) return next.error();
  current_.store(std::move(next).value());
  return api::Ok{};
}

void ReloadableAuthenticator::authenticate(const Credentials& credentials,
                                           std::function<void(AuthnResult)> done) const {
  // The build in use stays alive until its answer, even if a reload replaces it meanwhile.
  std::shared_ptr<const Authenticator> current = current_.load();
  current->authenticate(credentials, [current, done = std::move(done)](AuthnResult result) {
    done(std::move(result));
  });
}

std::shared_ptr<const Authenticator> make_websocket_protocol_authenticator(
    std::shared_ptr<const Authenticator> token_authenticator) {
  return std::make_shared<WebSocketProtocolAuthenticator>(std::move(token_authenticator));
}

std::vector<std::string> websocket_protocols_without_token(const http::Header& header) {
  std::vector<std::string> out;
  for (std::string_view protocol : offered_protocols(header)) {
    if (!protocol.empty() && !is_token_protocol(protocol)) out.emplace_back(protocol);
  }
  return out;
}

api::Expected<std::shared_ptr<const Authenticator>> make_x509_authenticator(
    const std::string& ca_file) {
  auto verifier = ClientCertificateVerifier::load(ca_file);
  if (!verifier) return std::move(verifier).error();
  return std::shared_ptr<const Authenticator>(
      std::make_shared<X509Authenticator>(std::move(verifier).value()));
}

api::Expected<std::shared_ptr<const Authenticator>> make_request_header_authenticator(
    RequestHeaderOptions options) {
  auto verifier = ClientCertificateVerifier::load(options.client_ca_file);
  if (!verifier) return std::move(verifier).error();
  return std::shared_ptr<const Authenticator>(std::make_shared<RequestHeaderAuthenticator>(
      std::move(options), std::move(verifier).value()));
}

std::shared_ptr<const Authenticator> make_authenticator_chain(
    std::vector<std::shared_ptr<const Authenticator>> authenticators, bool anonymous) {
  return std::make_shared<AuthenticatorChain>(std::move(authenticators), anonymous);
}

api::ApiError unauthorized() {
  return api::ApiError::unauthorized();
}

}  // namespace dpa::auth
