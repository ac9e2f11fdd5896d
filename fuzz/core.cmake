# The server core's parsers (http, ws, protocol, net, util, server/auth).
# Run them all with fuzz/run.sh.
set(WSTRACE_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})

wstrace_fuzz(http_request_fuzz
  SOURCES ${WSTRACE_FUZZ_DIR}/http_request_fuzz.cpp DEPS wstrace_ws wstrace_http)
wstrace_fuzz(ws_receiver_fuzz
  SOURCES ${WSTRACE_FUZZ_DIR}/ws_receiver_fuzz.cpp DEPS wstrace_ws)
wstrace_fuzz(deflate_negotiation_fuzz
  SOURCES ${WSTRACE_FUZZ_DIR}/deflate_negotiation_fuzz.cpp DEPS wstrace_ws)
wstrace_fuzz(inflater_fuzz
  SOURCES ${WSTRACE_FUZZ_DIR}/inflater_fuzz.cpp DEPS wstrace_ws)
wstrace_fuzz(protocol_fuzz
  SOURCES ${WSTRACE_FUZZ_DIR}/protocol_fuzz.cpp DEPS wstrace_protocol)
wstrace_fuzz(api_request_fuzz
  SOURCES ${WSTRACE_FUZZ_DIR}/api_request_fuzz.cpp DEPS wstrace_protocol)
wstrace_fuzz(units_fuzz
  SOURCES ${WSTRACE_FUZZ_DIR}/units_fuzz.cpp DEPS wstrace_util)

# No input may make a DNS query: resolution is stubbed in the target.
wstrace_fuzz(address_fuzz
  SOURCES ${WSTRACE_FUZZ_DIR}/address_fuzz.cpp DEPS wstrace_net)
target_link_options(address_fuzz PRIVATE -Wl,--wrap=getaddrinfo)
