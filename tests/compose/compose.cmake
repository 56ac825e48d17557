# The integration examples and their docs (tests/compose/), included from
# tests/tests.cmake after container.cmake (needs Python3_EXECUTABLE,
# PGBOOT_PYTHON_ENV and the container_images fixture).
#
#   compose.config      docker-compose config of every Compose file (no daemon)
#   compose.up          docker-compose.yml up through podman's socket: healthy
#                       postgres -> migrate exits 0 -> app serves; a broken
#                       migration exits 5 and the app never starts
#   compose.dev         docker-compose.dev.yml: two apps migrate together, once
#   compose.gate        docker-compose.gate.yml: app services gate on the one-shot
#                       migrator, no depends_on between them
#   deploy.kubernetes   deploy/kubernetes and deploy/helm: parse, schemas, fields
#   deploy.ci           deploy/ci/github-actions.yml: its pgboot steps run
#   deploy.docs         docs/integrations snippets verbatim in the tested files
#
# compose.up/dev bring their own PostgreSQL (a container); they need the images
# of tests/container/images.py (fixture container_images) and build the test
# postgres image themselves, once per machine (compose_tools.py). Label `container`
# like the other podman suites; everything here also carries `integrations`.
set(PGBOOT_COMPOSE_DIR ${CMAKE_CURRENT_LIST_DIR})
set(PGBOOT_COMPOSE_ENV
  "${PGBOOT_PYTHON_ENV}")

function(pgboot_compose_test name script labels)
  add_test(NAME ${name} COMMAND ${Python3_EXECUTABLE} ${PGBOOT_COMPOSE_DIR}/${script} -v)
  set_tests_properties(${name} PROPERTIES LABELS "${labels}" TIMEOUT 600
    ENVIRONMENT "${PGBOOT_COMPOSE_ENV};PGBOOT_BIN=$<TARGET_FILE:pgboot>")
endfunction()

pgboot_compose_test(compose.config test_compose_config.py "integrations")
pgboot_compose_test(compose.up test_compose_up.py "container;integrations")
pgboot_compose_test(compose.dev test_compose_dev.py "container;integrations")
pgboot_compose_test(compose.gate test_compose_gate.py "container;integrations")
set_tests_properties(compose.up compose.dev compose.gate PROPERTIES FIXTURES_REQUIRED container_images)

pgboot_compose_test(deploy.kubernetes test_kubernetes.py "integrations")
pgboot_compose_test(deploy.ci test_ci.py "integrations")
set_tests_properties(deploy.ci PROPERTIES FIXTURES_REQUIRED pg)
pgboot_compose_test(deploy.docs test_docs.py "integrations")
