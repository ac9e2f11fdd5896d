# The cluster's parsers: the --redis URL and the envelope publications travel
# in between nodes (bytes anyone who can PUBLISH to Redis controls). Only
# their own sources: no hiredis, no bridge.
wstrace_fuzz(redis_url_fuzz
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/redis_url_fuzz.cpp ${PROJECT_SOURCE_DIR}/src/cluster/redis_url.cpp
  DEPS wstrace_util)
wstrace_fuzz(envelope_fuzz
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/envelope_fuzz.cpp ${PROJECT_SOURCE_DIR}/src/cluster/envelope.cpp
  DEPS wstrace_util)
wstrace_fuzz(pubsub_message_fuzz
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/pubsub_message_fuzz.cpp ${PROJECT_SOURCE_DIR}/src/cluster/envelope.cpp
  DEPS wstrace_util)
