# Telemetry parsers: traceparent/tracestate and the OTEL_* string variables.
wstrace_fuzz(telemetry_traceparent_fuzz
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/telemetry_traceparent_fuzz.cpp
  DEPS wstrace_telemetry)
wstrace_fuzz(telemetry_env_fuzz
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/telemetry_env_fuzz.cpp
  DEPS wstrace_telemetry)
