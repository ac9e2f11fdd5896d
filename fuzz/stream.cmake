# The stream layer's parser: channel rules as the configuration reads them.
wstrace_fuzz(channel_rules_fuzz
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/channel_rules_fuzz.cpp ${PROJECT_SOURCE_DIR}/src/stream/rules.cpp
  DEPS wstrace_util)
