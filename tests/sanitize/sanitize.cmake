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

# The proof that this run can fail: one fault of each kind on purpose
# (selftest.cc); each test passes only on the sanitizer's report and exit 86.
if(TARGET unit_tests)
  target_sources(unit_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR}/selftest.cc)
  foreach(kind_report "leak|LeakSanitizer: detected memory leaks"
                      "overflow|AddressSanitizer: heap-buffer-overflow"
                      "ub|runtime error: signed integer overflow")
    string(REPLACE "|" ";" kr "${kind_report}")
    list(GET kr 0 kind)
    list(GET kr 1 report)
    add_test(NAME unit.sanitizer_selftest_${kind} COMMAND sh -c
      "out=$(\"$0\" --test-case='sanitizer self-test' 2>&1); rc=$?; printf '%s\\n' \"$out\" | tail -n 30; echo \"exit $rc\"; [ $rc = 86 ] && printf '%s' \"$out\" | grep -q \"$1\""
      $<TARGET_FILE:unit_tests> "${report}")
    set_tests_properties(unit.sanitizer_selftest_${kind} PROPERTIES LABELS unit
      ENVIRONMENT "PGBOOT_SANITIZER_SELFTEST=${kind}")
  endforeach()
endif()
