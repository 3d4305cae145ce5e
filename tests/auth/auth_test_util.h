// Test helpers for aggregator/auth: real X.509 certificates made with OpenSSL, files in a private
// temporary directory, and synchronous wrappers around the callback interfaces.
#pragma once

#include "aggregator/auth/auth.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dpa::auth::testing {

// A directory of its own per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "auth_test.XXXXXX").string();
    const char* made = mkdtemp(pattern.data());
    if (made == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = made;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes `content` to a file in the directory; returns its path.
  std::string write(const std::string& name, const std::string& content) const {
    std::string file = (path_ / name).string();
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }
  std::string path(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

using Key = std::shared_ptr<EVP_PKEY>;
using Certificate = std::shared_ptr<X509>;

inline Key make_key() {
  return Key(EVP_EC_gen("P-256"), EVP_PKEY_free);
}

struct CertificateSpec {
  std::string common_name;
  std::vector<std::string> organizations;
  std::vector<std::string> uids;  // subject UID attributes (OID 0.9.2342.19200300.100.1.1)
  bool ca = false;
  std::string extended_key_usage = "clientAuth";  // empty: no extension
  long valid_from_seconds = -3600;                // relative to now
  long valid_until_seconds = 24 * 3600;
};

// A certificate for `key`, signed by `issuer_key` (self-signed when `issuer` is null).
inline Certificate make_certificate(const CertificateSpec& spec, const Key& key,
                                    const Certificate& issuer, const Key& issuer_key) {
  static long serial = 1;
  Certificate cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.valid_from_seconds);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.valid_until_seconds);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  auto add = [&](int nid, const std::string& value) {
    X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(value.data()),
                               static_cast<int>(value.size()), -1, 0);
  };
  for (const auto& o : spec.organizations) add(NID_organizationName, o);
  for (const auto& uid : spec.uids) add(NID_userId, uid);
  if (!spec.common_name.empty()) add(NID_commonName, spec.common_name);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer.get()) : name);

  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer ? issuer.get() : cert.get(), cert.get(), nullptr, nullptr, 0);
  auto extend = [&](int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  };
  if (spec.ca) {
    extend(NID_basic_constraints, "critical,CA:TRUE");
    extend(NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    extend(NID_basic_constraints, "critical,CA:FALSE");
    extend(NID_key_usage, "critical,digitalSignature");
    if (!spec.extended_key_usage.empty()) extend(NID_ext_key_usage, spec.extended_key_usage);
  }
  X509_sign(cert.get(), (issuer_key ? issuer_key : key).get(), EVP_sha256());
  return cert;
}

inline std::string pem(const Certificate& cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509(bio.get(), cert.get());
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// A CA with its key, able to issue certificates.
struct Authority {
  Key key = make_key();
  Certificate certificate;

  explicit Authority(const std::string& common_name) {
    CertificateSpec spec;
    spec.common_name = common_name;
    spec.ca = true;
    certificate = make_certificate(spec, key, nullptr, nullptr);
  }
  Certificate issue(const CertificateSpec& spec) const {
    return make_certificate(spec, make_key(), certificate, key);
  }
};

inline http::PeerCertificates presented(Certificate leaf,
                                        std::vector<Certificate> intermediates = {}) {
  return http::PeerCertificates{std::move(leaf), std::move(intermediates)};
}

inline http::Header header(std::vector<std::pair<std::string, std::string>> fields) {
  http::Header h;
  h.method(boost::beast::http::verb::get);
  h.target("/");
  for (const auto& [name, value] : fields) h.insert(name, value);
  return h;
}

// Runs an authenticator that answers inline.
inline AuthnResult authenticate(const Authenticator& authenticator, const http::Header* header,
                                const http::PeerCertificates* certificates = nullptr) {
  std::optional<AuthnResult> out;
  int calls = 0;
  authenticator.authenticate(Credentials{header, certificates}, [&](AuthnResult result) {
    ++calls;
    out = std::move(result);
  });
  EXPECT_EQ(calls, 1);
  return out.value_or(AuthnResult{});
}

inline AuthzResult authorize(const Authorizer& authorizer, const Attributes& attributes) {
  std::optional<AuthzResult> out;
  int calls = 0;
  authorizer.authorize(attributes, [&](AuthzResult result) {
    ++calls;
    out = std::move(result);
  });
  EXPECT_EQ(calls, 1);
  return out.value_or(AuthzResult{});
}

inline UserInfo user(std::string name, std::vector<std::string> groups = {}) {
  UserInfo u;
  u.name = std::move(name);
  u.groups = std::move(groups);
  return u;
}

}  // namespace dpa::auth::testing
