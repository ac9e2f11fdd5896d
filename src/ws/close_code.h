// Close codes (RFC 6455 §7.4) and the typed errors of the WebSocket engine,
// each mapped to the close code the server sends for it.
#pragma once

#include <cstdint>
#include <string_view>

namespace wstrace::ws {

namespace close_code {
constexpr uint16_t kNormal = 1000;
constexpr uint16_t kGoingAway = 1001;      // shutdown
constexpr uint16_t kProtocolError = 1002;
constexpr uint16_t kUnsupportedData = 1003;
constexpr uint16_t kNoStatus = 1005;       // never sent: "the peer sent no code"
constexpr uint16_t kAbnormal = 1006;       // never sent: "no close frame at all"
constexpr uint16_t kInvalidPayload = 1007; // invalid UTF-8
constexpr uint16_t kPolicy = 1008;         // origin, auth
constexpr uint16_t kTooBig = 1009;
constexpr uint16_t kInternalError = 1011;
constexpr uint16_t kHeartbeatTimeout = 4408;
constexpr uint16_t kSlowConsumer = 4429;
constexpr uint16_t kTokenExpired = 4401;     // the token expired and no Refresh came
}  // namespace close_code

// May a peer send this code in a Close frame? (§7.4.1, §7.4.2 and the IANA
// registry: 1012–1014 are registered since.)
constexpr bool is_valid_received_close_code(uint16_t code) {
  if (code >= 3000 && code <= 4999) return true;
  switch (code) {
    case 1000: case 1001: case 1002: case 1003:
    case 1007: case 1008: case 1009: case 1010: case 1011:
    case 1012: case 1013: case 1014:
      return true;
    default:
      return false;
  }
}

// Everything that makes the engine fail a connection.
enum class Error : uint8_t {
  None,
  UnmaskedFrame,        // client frames must be masked (§5.1)
  ReservedBits,         // RSV set without an extension that defines it
  ReservedOpcode,
  FragmentedControl,    // control frame without FIN
  ControlTooLong,       // control payload > 125
  BadLength,            // 64-bit length with the top bit set
  UnexpectedContinuation,
  ExpectedContinuation, // a new data frame inside a fragmented message
  BadClosePayload,      // 1-byte close payload
  InvalidCloseCode,
  InvalidUtf8,
  MessageTooBig,
  CompressionError,     // inflate failed: not a valid deflate stream
  Internal,             // the server failed (zlib out of memory): 1011, not the client's fault
};

constexpr uint16_t close_code_for(Error e) {
  switch (e) {
    case Error::None: return close_code::kNormal;
    case Error::InvalidUtf8: return close_code::kInvalidPayload;
    case Error::MessageTooBig: return close_code::kTooBig;
    case Error::Internal: return close_code::kInternalError;
    default: return close_code::kProtocolError;
  }
}

constexpr std::string_view describe(Error e) {
  switch (e) {
    case Error::None: return "none";
    case Error::UnmaskedFrame: return "unmasked client frame";
    case Error::ReservedBits: return "reserved bits set";
    case Error::ReservedOpcode: return "reserved opcode";
    case Error::FragmentedControl: return "fragmented control frame";
    case Error::ControlTooLong: return "control frame payload over 125 bytes";
    case Error::BadLength: return "invalid payload length";
    case Error::UnexpectedContinuation: return "continuation frame without a message";
    case Error::ExpectedContinuation: return "new message inside a fragmented message";
    case Error::BadClosePayload: return "invalid close frame payload";
    case Error::InvalidCloseCode: return "invalid close code";
    case Error::InvalidUtf8: return "invalid UTF-8 in text";
    case Error::MessageTooBig: return "message too big";
    case Error::CompressionError: return "invalid compressed data";
    case Error::Internal: return "internal error";
  }
  return "unknown";
}

// A short name for metrics labels ("protocol", "utf8", "too_big", ...).
constexpr std::string_view error_kind(Error e) {
  switch (e) {
    case Error::InvalidUtf8: return "invalid_utf8";
    case Error::MessageTooBig: return "message_too_big";
    case Error::CompressionError: return "compression";
    case Error::Internal: return "internal";
    case Error::None: return "none";
    default: return "protocol";
  }
}

}  // namespace wstrace::ws
