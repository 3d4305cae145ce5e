// UTF-8 validation as Go's unicode/utf8 defines it (overlong forms, surrogates and code points
// above U+10FFFF are invalid): what JSON, protobuf string fields and WebSocket text frames require
// of text that came from outside.
#pragma once

#include <string>
#include <string_view>

namespace dpa::frames {

bool is_valid_utf8(std::string_view s);
// `s` with every invalid byte replaced by U+FFFD.
std::string to_valid_utf8(std::string_view s);

}  // namespace dpa::frames
