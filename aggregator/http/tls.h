// TLS set-up for the server (certificate + key) and the client (CA bundle, optional client
// certificate), plus a self-signed certificate generator for development and tests. Failures are
// ApiErrors so start-up can report "bad cert" like any other error.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>
#include <vector>

namespace dpa::http {

// Writes a self-signed cert+key (CN localhost, SAN DNS:localhost and IP:127.0.0.1, EC P-256, valid
// ten years) with OpenSSL into the given PEM paths, unless both files already exist.
api::Outcome ensure_self_signed_certificate(const std::string& cert_path,
                                            const std::string& key_path);

// TLS 1.2+ server context from a PEM certificate chain and private key.
api::Expected<std::shared_ptr<boost::asio::ssl::context>> make_server_tls_context(
    const std::string& cert_file, const std::string& key_file,
    const std::vector<std::string>& client_ca_files = {});

// TLS 1.2+ client context verifying the peer against `ca_file` (the system store when empty),
// presenting `client_cert_file`/`client_key_file` when both are given.
api::Expected<std::shared_ptr<boost::asio::ssl::context>> make_client_tls_context(
    const std::string& ca_file, const std::string& client_cert_file,
    const std::string& client_key_file);

}  // namespace dpa::http
