#include "aggregator/http/tls.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <sys/stat.h>

namespace dpa::http {
namespace ssl = boost::asio::ssl;

namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};

api::ApiError tls_error(const std::string& what, const std::string& detail) {
  return api::ApiError::internal(what + ": " + detail);
}

bool add_extension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

}  // namespace

api::Outcome ensure_self_signed_certificate(const std::string& cert_path,
                                            const std::string& key_path) {
  std::error_code fs_ec;
  if (std::filesystem::exists(cert_path, fs_ec) && std::filesystem::exists(key_path, fs_ec)) {
    return api::Ok{};
  }
  for (const std::string& path : {cert_path, key_path}) {
    auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, fs_ec);
  }

  std::unique_ptr<EVP_PKEY, KeyFree> key(EVP_EC_gen("P-256"));
  if (!key) return tls_error("self-signed certificate", "key generation failed");
  std::unique_ptr<X509, CertFree> cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), static_cast<long>(std::time(nullptr)));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 10L * 365 * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  if (!add_extension(cert.get(), NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1") ||
      !add_extension(cert.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !add_extension(cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign")) {
    return tls_error("self-signed certificate", "extensions");
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return tls_error("self-signed certificate", "signing failed");
  }

  {
    // The key is secret: create it owner-only before anything is written into it.
    mode_t old = ::umask(077);
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(key_path.c_str(), "wb"));
    ::umask(old);
    if (!f) return tls_error("cannot write " + key_path, std::strerror(errno));
    if (PEM_write_PrivateKey(f.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
      return tls_error("cannot write " + key_path, "PEM_write_PrivateKey");
    }
  }
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(cert_path.c_str(), "wb"));
  if (!f) return tls_error("cannot write " + cert_path, std::strerror(errno));
  if (PEM_write_X509(f.get(), cert.get()) != 1) {
    return tls_error("cannot write " + cert_path, "PEM_write_X509");
  }
  return api::Ok{};
}

api::Expected<std::shared_ptr<ssl::context>> make_server_tls_context(
    const std::string& cert_file, const std::string& key_file,
    const std::vector<std::string>& client_ca_files) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                       ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                   ec);
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) return tls_error("loading TLS certificate " + cert_file, ec.message());
  ctx->use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) return tls_error("loading TLS private key " + key_file, ec.message());
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return tls_error("TLS key " + key_file, "does not match certificate " + cert_file);
  }
  if (!client_ca_files.empty()) {
    // Ask for a client certificate, naming the CAs that mean something here, but do not judge it
    // during the handshake: a connection without one (a bearer token) is fine, and each
    // authenticator verifies the chain against its own CA (kube-apiserver's model).
    STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
    for (const auto& file : client_ca_files) {
      if (SSL_add_file_cert_subjects_to_stack(names, file.c_str()) != 1) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        return tls_error("loading client CA " + file, "no certificate could be read");
      }
    }
    SSL_CTX_set_client_CA_list(ctx->native_handle(), names);
    SSL_CTX_set_verify(ctx->native_handle(), SSL_VERIFY_PEER,
                       [](int, X509_STORE_CTX*) { return 1; });
  }
  return ctx;
}

api::Expected<std::shared_ptr<ssl::context>> make_client_tls_context(
    const std::string& ca_file, const std::string& client_cert_file,
    const std::string& client_key_file) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  ctx->set_verify_mode(ssl::verify_peer, ec);
  if (ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
  } else {
    ctx->load_verify_file(ca_file, ec);
  }
  if (ec) return tls_error("loading CA file " + ca_file, ec.message());
  if (!client_cert_file.empty() || !client_key_file.empty()) {
    ctx->use_certificate_chain_file(client_cert_file, ec);
    if (ec) return tls_error("loading client certificate " + client_cert_file, ec.message());
    ctx->use_private_key_file(client_key_file, ssl::context::pem, ec);
    if (ec) return tls_error("loading client key " + client_key_file, ec.message());
  }
  return ctx;
}

}  // namespace dpa::http
