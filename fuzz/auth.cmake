# The auth layer's parsers: JWK Sets, PEM keys and JWTs (src/auth).
wstrace_fuzz(jwt_jwk_fuzz
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/jwt_jwk_fuzz.cpp DEPS wstrace_auth)
