// Appending JSON text to a Buffer: string escaping and the server's messages.
#pragma once

#include <string_view>

#include "util/buffer.h"

namespace wstrace::protocol {

// Appends `s` as a JSON string literal (with quotes). `s` must be UTF-8;
// only '"', '\\' and control characters are escaped.
void append_json_string(Buffer& out, std::string_view s);

// Length append_json_string would produce.
size_t json_string_size(std::string_view s);

}  // namespace wstrace::protocol
