// The receiving half of the RFC 6455 engine, with no I/O: the owner feeds it
// the bytes it read and it calls back with complete messages and control
// frames, or with the first protocol error.
//
//   uint64_t pending;
//   size_t used = receiver.feed(data, len, handler, pending);
//
// feed() consumes whole frames only; the owner keeps the unconsumed tail and
// feeds it again with more bytes appended (`pending` tells how large that
// frame is once its header has arrived, 0 before). Payloads are unmasked in
// place, so `data` must be writable. Text is checked as it arrives: a byte
// that cannot be UTF-8 fails the connection even before its frame is
// complete (the part of a frame already checked is remembered between
// calls, relying on the tail being fed again). Compressed text is checked as
// it is inflated, frame by frame: a bad byte fails the message at the end of
// the frame that carries it. The handler is a template parameter (inlined, no
// virtual calls) with these members:
//
//   void on_message(Opcode op, uint8_t* data, size_t len); // Text (valid UTF-8) or Binary
//   void on_ping(const uint8_t* data, size_t len);
//   void on_pong(const uint8_t* data, size_t len);
//   void on_close(uint16_t code, std::string_view reason); // 1005: no code sent
//   void on_error(Error error);                            // then feed() stops for good
//   bool keep_reading();           // false stops feed() after the current frame
//   bool deflate_negotiated();     // permessage-deflate in use (RSV1 allowed)
//   Inflater* inflater();          // called only when deflate_negotiated()
//   bool inflate_reset();          // client_no_context_takeover: reset after each message
//   Buffer& scratch();             // where inflated messages are written
//   uint64_t max_message_size();   // larger messages fail with MessageTooBig
//
// The handler must not destroy the receiver from inside a callback.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <string_view>

#include "util/buffer.h"
#include "ws/close_code.h"
#include "ws/deflate.h"
#include "ws/frame.h"
#include "ws/utf8.h"

namespace wstrace::ws {

class Receiver {
 public:
  template <class H>
  size_t feed(uint8_t* data, size_t len, H& h, uint64_t& pending);

  // After an error or a Close frame nothing more is accepted.
  bool done() const { return done_; }
  bool in_fragmented_message() const { return assembly_ != nullptr; }

 private:
  // State of a fragmented message; exists only while one is in progress.
  // A compressed one is inflated frame by frame as its frames arrive, so
  // `payload` holds the message inflated so far and a bad byte of text fails
  // the message at the frame that carries it, not at the last one.
  struct Assembly {
    Buffer payload;
    Utf8Validator utf8;
    // Compressed, client without context takeover: the thread's shared
    // inflater serves other connections between our frames, so the message
    // gets its own until it ends (freed with the Assembly).
    std::unique_ptr<Inflater> inflater;
    uint64_t wire_size = 0;  // compressed: payload bytes received so far
    uint8_t opcode = 0;
    bool compressed = false;
  };

  template <class H>
  Error check_header(const FrameHeader& fh, H& h) const;
  template <class H>
  bool handle_frame(const FrameHeader& fh, uint8_t* payload, H& h);
  template <class H>
  bool deliver(uint8_t opcode, bool compressed, bool utf8_checked, uint8_t* data, size_t len,
               H& h);
  bool check_incomplete_text(const FrameHeader& fh, const uint8_t* payload, size_t avail);
  static Error inflate_error(Inflater::Result r) {
    switch (r) {
      case Inflater::Result::TooBig: return Error::MessageTooBig;
      case Inflater::Result::Internal: return Error::Internal;
      default: return Error::CompressionError;
    }
  }
  template <class H>
  bool fail(Error e, H& h) {
    done_ = true;
    assembly_.reset();
    h.on_error(e);
    return false;
  }

  std::unique_ptr<Assembly> assembly_;
  // How far the UTF-8 check has got into the incomplete text frame at the
  // head of the tail (it is fed again with more bytes). Kept within the
  // padding after assembly_: a Receiver is part of every idle connection.
  uint32_t partial_checked_ = 0;
  Utf8Validator partial_utf8_;
  bool partial_active_ = false;
  bool done_ = false;
};

inline bool Receiver::check_incomplete_text(const FrameHeader& fh, const uint8_t* payload,
                                            size_t avail) {
  const bool text = (fh.opcode == 0x1 && !fh.rsv1) ||
                    (fh.opcode == 0x0 && assembly_ && assembly_->opcode == 0x1 &&
                     !assembly_->compressed);
  if (!text || fh.payload_size > UINT32_MAX) return true;
  if (!partial_active_) {
    partial_active_ = true;
    partial_checked_ = 0;
    partial_utf8_ = fh.opcode == 0x0 ? assembly_->utf8 : Utf8Validator{};
  }
  // Unmask a copy: the bytes stay masked in the tail the owner feeds again.
  uint8_t chunk[512];
  while (partial_checked_ < avail) {
    const size_t n = std::min<size_t>(sizeof chunk, avail - partial_checked_);
    std::memcpy(chunk, payload + partial_checked_, n);
    apply_mask(chunk, n, fh.mask, partial_checked_);
    if (!partial_utf8_.feed(chunk, n)) return false;
    partial_checked_ += static_cast<uint32_t>(n);
  }
  return true;
}

template <class H>
Error Receiver::check_header(const FrameHeader& fh, H& h) const {
  if (!fh.masked) return Error::UnmaskedFrame;
  if (fh.rsv2 || fh.rsv3) return Error::ReservedBits;
  const uint8_t op = fh.opcode;
  if (is_control(op)) {
    if (op != 0x8 && op != 0x9 && op != 0xA) return Error::ReservedOpcode;
    if (fh.rsv1) return Error::ReservedBits;
    if (!fh.fin) return Error::FragmentedControl;
    if (fh.payload_size > kMaxControlPayload) return Error::ControlTooLong;
    return Error::None;
  }
  if (op > 0x2) return Error::ReservedOpcode;
  if (op == 0x0) {
    if (!assembly_) return Error::UnexpectedContinuation;
    if (fh.rsv1) return Error::ReservedBits;  // RSV1 only on the first frame (RFC 7692 §6.1)
    const uint64_t so_far =
        assembly_->compressed ? assembly_->wire_size : assembly_->payload.size();
    if (so_far + fh.payload_size > h.max_message_size()) {
      return Error::MessageTooBig;
    }
    return Error::None;
  }
  if (assembly_) return Error::ExpectedContinuation;
  if (fh.rsv1 && !h.deflate_negotiated()) return Error::ReservedBits;
  if (fh.payload_size > h.max_message_size()) return Error::MessageTooBig;
  return Error::None;
}

template <class H>
size_t Receiver::feed(uint8_t* data, size_t len, H& h, uint64_t& pending) {
  size_t pos = 0;
  pending = 0;
  while (!done_ && pos < len) {
    FrameHeader fh;
    HeaderStatus hs = parse_header(data + pos, len - pos, fh);
    if (hs == HeaderStatus::NeedMore) break;
    if (hs == HeaderStatus::BadLength) {
      fail(Error::BadLength, h);
      break;
    }
    // Reject as soon as the header is known: never buffer a frame we refuse.
    Error e = check_header(fh, h);
    if (e != Error::None) {
      fail(e, h);
      break;
    }
    uint64_t frame_size = fh.header_size + fh.payload_size;
    if (len - pos < frame_size) {
      if (!check_incomplete_text(fh, data + pos + fh.header_size, len - pos - fh.header_size)) {
        fail(Error::InvalidUtf8, h);
        break;
      }
      pending = frame_size;
      break;
    }
    partial_active_ = false;
    uint8_t* payload = data + pos + fh.header_size;
    apply_mask(payload, static_cast<size_t>(fh.payload_size), fh.mask);
    pos += static_cast<size_t>(frame_size);
    if (!handle_frame(fh, payload, h)) break;
    if (!h.keep_reading()) break;
  }
  return pos;
}

template <class H>
bool Receiver::handle_frame(const FrameHeader& fh, uint8_t* payload, H& h) {
  const size_t n = static_cast<size_t>(fh.payload_size);
  switch (fh.opcode) {
    case 0x9:
      h.on_ping(payload, n);
      return true;
    case 0xA:
      h.on_pong(payload, n);
      return true;
    case 0x8: {
      if (n == 0) {
        done_ = true;
        h.on_close(close_code::kNoStatus, {});
        return false;
      }
      if (n == 1) return fail(Error::BadClosePayload, h);
      uint16_t code = static_cast<uint16_t>((payload[0] << 8) | payload[1]);
      if (!is_valid_received_close_code(code)) return fail(Error::InvalidCloseCode, h);
      if (!is_valid_utf8(payload + 2, n - 2)) return fail(Error::InvalidUtf8, h);
      done_ = true;
      h.on_close(code, std::string_view(reinterpret_cast<char*>(payload + 2), n - 2));
      return false;
    }
    default:
      break;
  }

  if (fh.opcode != 0x0) {
    if (fh.fin) return deliver(fh.opcode, fh.rsv1, false, payload, n, h);
    assembly_ = std::make_unique<Assembly>();
    assembly_->opcode = fh.opcode;
    assembly_->compressed = fh.rsv1;
    if (fh.rsv1 && h.inflate_reset()) assembly_->inflater = std::make_unique<Inflater>(15);
  }
  Assembly& a = *assembly_;
  const bool text = a.opcode == 0x1;
  // Fail a bad text message at its first bad byte, not at its last fragment.
  if (a.compressed) {
    a.wire_size += n;
    Inflater* inflater = a.inflater ? a.inflater.get() : h.inflater();
    const size_t before = a.payload.size();
    const size_t max = static_cast<size_t>(h.max_message_size());
    Inflater::Result r = inflater->inflate_part(payload, n, a.payload, 0, max);
    if (r == Inflater::Result::Ok && fh.fin) {
      r = inflater->finish_message(a.payload, 0, max, h.inflate_reset());
    }
    if (r != Inflater::Result::Ok) return fail(inflate_error(r), h);
    if (text && !a.utf8.feed(a.payload.data() + before, a.payload.size() - before)) {
      return fail(Error::InvalidUtf8, h);
    }
  } else {
    a.payload.append(payload, n);
    if (text && !a.utf8.feed(payload, n)) return fail(Error::InvalidUtf8, h);
  }
  if (!fh.fin) return true;
  if (text && !a.utf8.complete()) return fail(Error::InvalidUtf8, h);
  std::unique_ptr<Assembly> done = std::move(assembly_);
  return deliver(done->opcode, false, true, done->payload.data(), done->payload.size(), h);
}

template <class H>
bool Receiver::deliver(uint8_t opcode, bool compressed, bool utf8_checked, uint8_t* data,
                       size_t len, H& h) {
  if (compressed) {
    Buffer& out = h.scratch();
    out.clear();
    Inflater::Result r =
        h.inflater()->inflate_message(data, len, out, h.max_message_size(), h.inflate_reset());
    if (r != Inflater::Result::Ok) return fail(inflate_error(r), h);
    data = out.data();
    len = out.size();
  }
  if (opcode == 0x1 && !utf8_checked && !is_valid_utf8(data, len)) {
    return fail(Error::InvalidUtf8, h);
  }
  h.on_message(static_cast<Opcode>(opcode), data, len);
  return true;
}

}  // namespace wstrace::ws
