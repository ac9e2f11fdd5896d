// libFuzzer target: W3C traceparent / tracestate parsing. A context that
// parses must format back to a traceparent that parses to the same ids.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "telemetry/trace_context.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  using namespace wstrace::telemetry;
  if (auto ctx = parse_traceparent(in)) {
    if (!ctx->trace_id.valid() || !ctx->span_id.valid()) {
      std::abort();
    }
    std::string again = format_traceparent(*ctx);
    auto back = parse_traceparent(again);
    if (!back || !(back->trace_id == ctx->trace_id) || !(back->span_id == ctx->span_id) ||
        back->sampled() != ctx->sampled()) {
      std::abort();
    }
  }
  std::string ts = parse_tracestate(in);
  if (ts.size() > kMaxTraceStateLength) {
    std::abort();
  }
  (void)TraceId::from_hex(in);
  (void)SpanId::from_hex(in);
  return 0;
}
