// HTTP/1.1 responses: status lines and simple complete responses.
#pragma once

#include <string>
#include <string_view>

namespace wstrace::http {

std::string_view reason_phrase(int status);

// A complete response with a body. `extra_headers` is inserted verbatim
// (each line ending in CRLF).
std::string make_response(int status, std::string_view content_type, std::string_view body,
                          std::string_view extra_headers = {}, bool keep_alive = false);

}  // namespace wstrace::http
