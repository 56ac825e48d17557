# Container suites (label `container`): the FROM scratch migration image and the
# example app images in podman, offline, against the harness's PostgreSQL.
# Included from tests/tests.cmake (needs Python3_EXECUTABLE, PGBOOT_TEST_STATE and
# PGBOOT_PYTHON_ENV).
#
# container.images is the fixture that prepares the base image (once per
# machine) and builds the images (once per source tree), see images.py; every
# container.test_* suite requires it and the `pg` fixture.
set(PGBOOT_CONTAINER_DIR ${CMAKE_CURRENT_LIST_DIR})
set(PGBOOT_CONTAINER_ENV
  "${PGBOOT_PYTHON_ENV}")

add_test(NAME container.images
  COMMAND ${Python3_EXECUTABLE} ${PGBOOT_CONTAINER_DIR}/images.py build)
set_tests_properties(container.images PROPERTIES
  FIXTURES_SETUP container_images LABELS container TIMEOUT 1800
  ENVIRONMENT "${PGBOOT_CONTAINER_ENV}")

# The linux/arm64 migration image and the two-platform manifest (test_multiarch.py):
# a cold build cross-compiles the whole binary (10 min on a loaded 2-core machine),
# so it is a fixture with the images' timeout, not part of the suite's 600 s.
add_test(NAME container.arm64_image
  COMMAND ${Python3_EXECUTABLE} ${PGBOOT_CONTAINER_DIR}/test_multiarch.py build)
set_tests_properties(container.arm64_image PROPERTIES
  FIXTURES_SETUP container_arm64_image FIXTURES_REQUIRED container_images LABELS container
  TIMEOUT 1800 ENVIRONMENT "${PGBOOT_CONTAINER_ENV}")

file(GLOB PGBOOT_CONTAINER_SUITES CONFIGURE_DEPENDS ${PGBOOT_CONTAINER_DIR}/test_*.py)
foreach(suite ${PGBOOT_CONTAINER_SUITES})
  get_filename_component(name ${suite} NAME_WE)
  add_test(NAME container.${name} COMMAND ${Python3_EXECUTABLE} ${suite} -v)
  set_tests_properties(container.${name} PROPERTIES
    FIXTURES_REQUIRED "pg;container_images" LABELS container TIMEOUT 600
    ENVIRONMENT "${PGBOOT_CONTAINER_ENV}")
endforeach()
set_tests_properties(container.test_multiarch PROPERTIES
  FIXTURES_REQUIRED "pg;container_images;container_arm64_image")
