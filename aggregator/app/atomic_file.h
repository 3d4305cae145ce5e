// Replacing a file so that a reader sees the old content or the new, never part of either: the
// content goes to a temporary file in the same directory (created with `mode` before anything is
// written to it, so a secret is never readable by others), is fsynced, and is renamed over.
#pragma once

#include "aggregator/apimachinery/status.h"

#include <sys/types.h>

#include <string>

namespace dpa::app {

// Errors (500) name the path and the cause.
api::Outcome write_file_atomically(const std::string& path, const std::string& content,
                                   mode_t mode = 0644);

}  // namespace dpa::app
