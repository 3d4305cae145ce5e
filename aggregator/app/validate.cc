#include "aggregator/app/validate.h"

#include "aggregator/apimachinery/codec.h"
#include "aggregator/app/config.h"
#include "aggregator/auth/auth.h"
#include "aggregator/dataplaneservice/types.h"
#include "aggregator/plugin/datasources.h"
#include "aggregator/plugin/plugin_registry.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

namespace dpa::app {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class Checker {
 public:
  explicit Checker(ValidationReport& report) : report_(report) {}

  void problem(std::string file, std::string where, std::string reason) {
    report_.problems.push_back({std::move(file), std::move(where), std::move(reason)});
  }

  // Plugin directories: what the server's scan skips (and logs) is a problem here.
  void plugins(const Config& config, std::set<std::string>& ids) {
    std::vector<fs::path> dirs;
    for (const auto& dir : config.plugins_dirs) {
      std::error_code ec;
      if (!fs::is_directory(dir, ec)) {
        problem("--plugins-dir " + dir, "", "not a directory");
        continue;
      }
      dirs.emplace_back(dir);
    }
    auto registry = plugin::PluginRegistry::scan(dirs);
    for (const std::string& error : registry.errors()) problem(error, "", "plugin skipped");
    for (const auto& info : registry.plugins()) {
      ids.insert(info.id);
      if (info.backend && ::access(info.executable_path.c_str(), X_OK) != 0) {
        problem((info.dir / "plugin.json").string(), "executable",
                info.executable_path.string() + " is not executable");
      }
    }
    report_.plugins = registry.plugins().size();
    for (const auto& address : config.plugin_addresses) {
      ids.insert(address.substr(0, address.find('=')));
    }
  }

  void datasources(const Config& config, const std::set<std::string>& plugin_ids) {
    if (config.datasources.empty()) return;
    auto loaded = plugin::load_provisioning(config.datasources);
    if (!loaded) return problem(config.datasources, "", loaded.error().message);
    for (const auto& ds : *loaded) {
      const std::string where = "datasources[" + ds.name + "]";
      if (ds.type.empty()) {
        problem(config.datasources, where + ".type", "required");
      } else if (!plugin_ids.count(ds.type)) {
        problem(config.datasources, where + ".type",
                "no plugin \"" + ds.type + "\" in --plugins-dir or --plugin-address");
      }
    }
    report_.datasources = loaded->size();
  }

  // The TLS and authentication files named by flags, loaded as the server loads them.
  void files(const Config& config) {
    if (!config.token_auth_file.empty()) {
      if (auto loaded = auth::load_token_file(config.token_auth_file); !loaded) {
        problem("--token-auth-file " + config.token_auth_file, "", loaded.error().message);
      }
    }
    if (!config.authorization_policy_file.empty()) {
      if (auto loaded = auth::load_abac_policy(config.authorization_policy_file); !loaded) {
        problem("--authorization-policy-file " + config.authorization_policy_file, "",
                loaded.error().message);
      }
    }
    if (!config.tls_cert_file.empty()) {
      using Ctx = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;
      Ctx key_alone(SSL_CTX_new(TLS_method()), SSL_CTX_free);
      Ctx pair(SSL_CTX_new(TLS_method()), SSL_CTX_free);
      const char* key = config.tls_private_key_file.c_str();
      if (SSL_CTX_use_certificate_chain_file(pair.get(), config.tls_cert_file.c_str()) != 1) {
        problem("--tls-cert-file " + config.tls_cert_file, "", "not a PEM certificate chain");
      } else if (SSL_CTX_use_PrivateKey_file(key_alone.get(), key, SSL_FILETYPE_PEM) != 1) {
        problem("--tls-private-key-file " + config.tls_private_key_file, "", "not a PEM key");
      } else if (SSL_CTX_use_PrivateKey_file(pair.get(), key, SSL_FILETYPE_PEM) != 1 ||
                 SSL_CTX_check_private_key(pair.get()) != 1) {
        problem("--tls-private-key-file " + config.tls_private_key_file, "",
                "does not match --tls-cert-file");
      }
    }
    for (const auto& [flag, path] :
         {std::pair{"--client-ca-file", config.client_ca_file},
          std::pair{"--requestheader-client-ca-file", config.requestheader_client_ca_file},
          std::pair{"--etcd-cafile", config.etcd_cafile}}) {
      if (path.empty()) continue;
      std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()),
                                                            SSL_CTX_free);
      if (SSL_CTX_load_verify_locations(ctx.get(), path.c_str(), nullptr) != 1) {
        problem(std::string(flag) + " " + path, "", "no PEM certificate can be read from it");
      }
    }
    ERR_clear_error();
  }

  // DataPlaneService files: the API's validation, strict about unknown fields, plus the cross-file
  // checks the API cannot make for one object.
  void dataplaneservices(const std::vector<std::string>& paths,
                         const std::set<std::string>& plugin_ids) {
    std::map<std::string, std::string> claimed;  // group/version -> where
    for (const auto& file : expand(paths)) {
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        problem(file, "", "cannot read");
        continue;
      }
      std::ostringstream text;
      text << in.rdbuf();
      auto documents = api::decode_yaml(text.str(), api::YamlScalars::kJson, 1000);
      if (!documents) {
        problem(file, "", documents.error().message);
        continue;
      }
      for (std::size_t i = 0; i < documents->size(); ++i) {
        json& object = (*documents)[i];
        const std::string where = documents->size() > 1 ? "document " + std::to_string(i + 1) + ": "
                                                         : std::string();
        object_problems(file, where, object, plugin_ids, claimed);
      }
    }
  }

 private:
  void object_problems(const std::string& file, const std::string& where, const json& object,
                       const std::set<std::string>& plugin_ids,
                       std::map<std::string, std::string>& claimed) {
    if (auto ok = dataplaneservice::check_type_meta(object); !ok) {
      return problem(file, where + "kind", ok.error().message);
    }
    ++report_.dataplaneservices;
    for (const auto& field : dataplaneservice::unknown_fields(object)) {
      problem(file, where + field, "unknown field");
    }
    if (auto ok = dataplaneservice::validate(object); !ok) {
      // One line per cause (details.causes[]: field and message), as kubectl prints them.
      const json& details = ok.error().details;
      const json causes = details.is_object() && details.contains("causes") ? details["causes"]
                                                                            : json::array();
      if (!causes.is_array() || causes.empty()) problem(file, where, ok.error().message);
      for (const auto& cause : causes) {
        problem(file, where + api::string_field(cause, "field"), api::string_field(cause, "message"));
      }
      return;
    }
    auto spec = dataplaneservice::decode_spec(object);
    if (!spec) return;
    if (!plugin_ids.count(spec->plugin_id)) {
      problem(file, where + "spec.pluginID",
              "no plugin \"" + spec->plugin_id + "\" in --plugins-dir or --plugin-address");
    }
    const std::string key = spec->group + "/" + spec->version;
    const std::string here = file + (where.empty() ? "" : " " + where.substr(0, where.size() - 2));
    auto [it, fresh] = claimed.emplace(key, here);
    if (!fresh) {
      problem(file, where + "spec.group", key + " is already claimed by " + it->second);
    }
  }

  // Files as given; a directory's *.yaml, *.yml and *.json in name order.
  std::vector<std::string> expand(const std::vector<std::string>& paths) {
    std::vector<std::string> out;
    for (const auto& path : paths) {
      std::error_code ec;
      if (!fs::is_directory(path, ec)) {
        out.push_back(path);
        continue;
      }
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(path, ec)) {
        const auto ext = entry.path().extension().string();
        if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json")) {
          found.push_back(entry.path().string());
        }
      }
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    }
    return out;
  }

  ValidationReport& report_;
};

}  // namespace

ValidationReport validate_configuration(const std::vector<std::string>& args) {
  ValidationReport report;
  Checker check(report);
  std::vector<std::string> files;
  std::vector<std::string> flags = {"dataplane-aggregator"};
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if ((arg == "-f" || arg == "--filename") && i + 1 < args.size()) {
      files.push_back(args[++i]);
    } else if (arg.rfind("--filename=", 0) == 0) {
      files.push_back(arg.substr(11));
    } else {
      flags.push_back(arg);
    }
  }
  Config config;
  try {
    std::vector<char*> argv;
    for (auto& flag : flags) argv.push_back(flag.data());
    bool help = false;
    config = parse_config(static_cast<int>(argv.size()), argv.data(), help);
  } catch (const ConfigError& e) {
    check.problem("flags", "", e.what());
    return report;
  }
  return validate_configuration(config, files);
}

ValidationReport validate_configuration(const Config& config,
                                        const std::vector<std::string>& files) {
  ValidationReport report;
  Checker check(report);
  std::set<std::string> plugin_ids;
  check.plugins(config, plugin_ids);
  check.datasources(config, plugin_ids);
  check.files(config);
  check.dataplaneservices(files, plugin_ids);
  return report;
}

std::string to_string(const ValidationProblem& p) {
  return p.file + ": " + (p.where.empty() ? "" : p.where + ": ") + p.reason;
}

int validate_command(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  const ValidationReport report = validate_configuration(args);
  for (const auto& p : report.problems) std::cerr << to_string(p) << "\n";
  if (!report.problems.empty()) return 1;
  std::cout << "OK: " << report.plugins << " plugins, " << report.datasources << " datasources, "
            << report.dataplaneservices << " DataPlaneServices\n";
  return 0;
}

}  // namespace dpa::app
