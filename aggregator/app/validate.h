// `dataplane-aggregator validate [--config FILE] [flags] [-f FILE_OR_DIR ...]`: loads what the
// server would load and exits without serving, like `promtool check config` or `nginx -t`.
//
// Checked: the flags and config file; every plugin directory (plugin.json shape, the backend
// executable present, for this architecture, and executable); the datasource provisioning (each
// datasource's type has a plugin, uids unique per org, required fields); the TLS and
// authentication files named by flags; and each DataPlaneService given with -f (YAML or JSON, one
// or more documents, a directory's *.yaml/*.yml/*.json): the API's own validation, with unknown
// fields as errors, plus its pluginID installed and its group/version claimed by no other.
//
// Output: one line per problem on stderr, "<file>: <path inside the file>: <reason>" (exit 1), or
// "OK: N plugins, M datasources, K DataPlaneServices" on stdout (exit 0). A bad flag is a problem
// of "flags".
#pragma once

#include <string>
#include <vector>

namespace dpa::app {

struct ValidationProblem {
  std::string file;    // the file (or flag) the problem is in
  std::string where;   // the path inside it ("datasources[TestData].type", "document 2: spec.group")
  std::string reason;
};

struct ValidationReport {
  std::vector<ValidationProblem> problems;
  std::size_t plugins = 0;
  std::size_t datasources = 0;
  std::size_t dataplaneservices = 0;
};

// argv without the "validate" word: flags as the server takes them, plus -f/--filename.
ValidationReport validate_configuration(const std::vector<std::string>& args);
// The checks of a parsed configuration and DataPlaneService files; the server runs them (with no
// files) before it starts, and refuses to start on any problem, with the same messages.
ValidationReport validate_configuration(const struct Config& config,
                                        const std::vector<std::string>& files);
// "<file>: <path>: <reason>"
std::string to_string(const ValidationProblem& problem);

// Runs the command: prints the report, returns the exit code.
int validate_command(int argc, char** argv);

}  // namespace dpa::app
