# The linux/arm64 release binary under qemu-user (label `arm64`), included from
# tests/tests.cmake. Needs Python3_EXECUTABLE, PGBOOT_TEST_STATE, PGBOOT_PYTHON_ENV.
#
#   arm64.build      fixture: scripts/build-static.sh --arch arm64 into BUILD/arm64
#                    (the sysroot and the build tree are kept there: a second run
#                    rebuilds only what changed, and ccache keeps the objects)
#   arm64.unit       the unit tests, cross-built, run by qemu-aarch64-static
#   arm64.test_qemu  the stripped binary against the shared server (tests/arm64)
set(PGBOOT_ARM64_DIR ${CMAKE_BINARY_DIR}/arm64)
set(PGBOOT_ARM64_BIN ${PGBOOT_ARM64_DIR}/pgboot-linux-arm64)

add_test(NAME arm64.build
  COMMAND ${CMAKE_SOURCE_DIR}/scripts/build-static.sh --arch arm64 --build-dir ${PGBOOT_ARM64_DIR}
          --with-tests --out ${PGBOOT_ARM64_BIN})
set_tests_properties(arm64.build PROPERTIES FIXTURES_SETUP arm64_build LABELS arm64 TIMEOUT 1800)

# unit_tests is linked dynamically against the arm64 glibc and libstdc++ that
# crossbuild-essential-arm64 installs under /usr/aarch64-linux-gnu. Their loader
# is run explicitly with --library-path rather than through `qemu -L`: with a -L
# prefix, qemu-user 7.2 (Debian 12) never finishes a fork() of a dynamically
# linked guest (the child spins; a static guest, or one without -L, forks fine),
# which hung supervisor_test (its wait-status case forks children).
set(PGBOOT_ARM64_LIBS /usr/aarch64-linux-gnu/lib)
add_test(NAME arm64.unit
  COMMAND qemu-aarch64-static ${PGBOOT_ARM64_LIBS}/ld-linux-aarch64.so.1
          --library-path ${PGBOOT_ARM64_LIBS} ${PGBOOT_ARM64_DIR}/unit_tests)
set_tests_properties(arm64.unit PROPERTIES FIXTURES_REQUIRED arm64_build LABELS arm64 TIMEOUT 600)

file(GLOB suites CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.py)
foreach(suite ${suites})
  get_filename_component(name ${suite} NAME_WE)
  add_test(NAME arm64.${name} COMMAND ${Python3_EXECUTABLE} ${suite} -v)
  set_tests_properties(arm64.${name} PROPERTIES
    FIXTURES_REQUIRED "pg;arm64_build" LABELS arm64 TIMEOUT 600
    ENVIRONMENT "PGBOOT_BIN=$<TARGET_FILE:pgboot>;PGBOOT_ARM64_BIN=${PGBOOT_ARM64_BIN};${PGBOOT_PYTHON_ENV}")
endforeach()
