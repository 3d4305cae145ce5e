// The process: parses flags, wires the components of DESIGN §4 together (store -> controllers ->
// route table; server -> front router -> API / discovery / data plane / delegate), handles
// SIGTERM/SIGINT with a graceful shutdown, and stops every plugin before exiting.
#pragma once

namespace dpa::app {

// Returns the process exit code.
int run(int argc, char** argv);

}  // namespace dpa::app
