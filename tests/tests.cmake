# Black-box suites (Python 3 stdlib unittest) run against the built binary.
# pg.start/pg.stop are CTest fixtures: one real PostgreSQL 15 server for the run,
# stopped even when tests fail. Each suite makes its own databases, so suites
# can run in parallel (ctest -j).
find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(PGBOOT_TEST_STATE ${CMAKE_BINARY_DIR}/test-state)
# The ASan+UBSan build (tests/sanitize/README.md) tells the suites so: they skip
# what a sanitized binary cannot honour and triple their time limits.
set(PGBOOT_SANITIZED_ENV "")
if(PGBOOT_SANITIZE)
  set(PGBOOT_SANITIZED_ENV ";PGBOOT_SANITIZED=1")
endif()

# Every Python suite imports the harness package (tests/harness) from here, and
# nothing else on sys.path: see tests/harness/README.md.
set(PGBOOT_PYTHON_ENV
  "PYTHONPATH=${CMAKE_SOURCE_DIR}/tests;PGBOOT_TEST_STATE=${PGBOOT_TEST_STATE};PGBOOT_SOURCE_DIR=${CMAKE_SOURCE_DIR};PYTHONDONTWRITEBYTECODE=1${PGBOOT_SANITIZED_ENV}")
add_test(NAME pg.start COMMAND ${Python3_EXECUTABLE} -m harness.cluster start ${PGBOOT_TEST_STATE})
add_test(NAME pg.stop COMMAND ${Python3_EXECUTABLE} -m harness.cluster stop ${PGBOOT_TEST_STATE})
set_tests_properties(pg.start PROPERTIES FIXTURES_SETUP pg LABELS "integration;pid1"
  ENVIRONMENT "${PGBOOT_PYTHON_ENV}")
set_tests_properties(pg.stop PROPERTIES FIXTURES_CLEANUP pg LABELS "integration;pid1"
  ENVIRONMENT "${PGBOOT_PYTHON_ENV}")

# pgboot_python_suites(LABEL DIR): one CTest test per DIR/test_*.py.
function(pgboot_python_suites label dir)
  file(GLOB suites CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/${dir}/test_*.py)
  foreach(suite ${suites})
    get_filename_component(name ${suite} NAME_WE)
    add_test(NAME ${label}.${name} COMMAND ${Python3_EXECUTABLE} ${suite} -v)
    set_tests_properties(${label}.${name} PROPERTIES
      FIXTURES_REQUIRED pg LABELS ${label} TIMEOUT 600
      ENVIRONMENT "PGBOOT_BIN=$<TARGET_FILE:pgboot>;${PGBOOT_PYTHON_ENV}")
  endforeach()
endfunction()

pgboot_python_suites(integration tests/integration)
# The previous release (tests/previous_release.json), built once into the build
# tree for the suites that run it beside this one (tests/harness/previous_release.py).
# The previous release's build is slow on a cold machine; a second build tree
# (scripts/test.sh's sanitized one) points here at the first tree's copy.
set(PGBOOT_PREVIOUS_RELEASE_DIR "${CMAKE_BINARY_DIR}/previous-release" CACHE PATH
  "Where the previous release is built and cached for integration.test_upgrade")
set(PGBOOT_PREVIOUS_RELEASE_ENV "PGBOOT_PREVIOUS_RELEASE_DIR=${PGBOOT_PREVIOUS_RELEASE_DIR}")
add_test(NAME previous_release.build
  COMMAND ${Python3_EXECUTABLE} -m harness.previous_release build)
set_tests_properties(previous_release.build PROPERTIES FIXTURES_SETUP previous_release
  LABELS integration TIMEOUT 1800
  ENVIRONMENT "${PGBOOT_PYTHON_ENV};${PGBOOT_PREVIOUS_RELEASE_ENV}")
foreach(suite integration.test_upgrade)
  set_property(TEST ${suite} APPEND PROPERTY FIXTURES_REQUIRED previous_release)
  set_property(TEST ${suite} APPEND PROPERTY ENVIRONMENT "${PGBOOT_PREVIOUS_RELEASE_ENV}")
endforeach()
pgboot_python_suites(pid1 tests/pid1)
# Smoke tests of the harness's own fixtures (PgBouncer, TLS, fake listeners).
pgboot_python_suites(harness tests/harness)
# Kills, restarts, bad peers and inputs against the built binary (a few minutes).
pgboot_python_suites(fault tests/fault)

# The linux/arm64 release binary, cross-built, under qemu-user (label arm64).
include(${CMAKE_CURRENT_LIST_DIR}/arm64/arm64.cmake)

# Real OCI images in podman (label container; CI runs them after the fast suites).
include(${CMAKE_CURRENT_LIST_DIR}/container/container.cmake)
# docker-compose through podman's socket, Kubernetes/Helm examples, tested docs.
include(${CMAKE_CURRENT_LIST_DIR}/compose/compose.cmake)

# The benchmark harness at a tiny size, so it cannot rot (label bench; it
# installs npm and dbmate itself, nothing else does).
include(${CMAKE_SOURCE_DIR}/bench/bench.cmake)
