# -DPGBOOT_SANITIZE=ON (tests/sanitize/README.md): the sanitizer defaults and
# the committed leak suppressions go into pgboot and unit_tests themselves.
file(STRINGS ${CMAKE_CURRENT_LIST_DIR}/lsan.supp supp_lines REGEX "^leak:")
string(JOIN "\\n" PGBOOT_LSAN_SUPPRESSIONS ${supp_lines})
configure_file(${CMAKE_CURRENT_LIST_DIR}/sanitizer_defaults.c.in
  ${CMAKE_BINARY_DIR}/sanitizer_defaults.c @ONLY)
foreach(t pgboot unit_tests)
  if(TARGET ${t})
    target_sources(${t} PRIVATE ${CMAKE_BINARY_DIR}/sanitizer_defaults.c)
  endif()
endforeach()
# GCC 12's -Wmaybe-uninitialized misfires on libstdc++'s <regex> (used by
# cxxopts) under -fsanitize=address: a false positive, silenced only there.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND TARGET pgboot_cli)
  target_compile_options(pgboot_cli PRIVATE -Wno-maybe-uninitialized)
endif()
