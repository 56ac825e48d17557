# bench.smoke: the benchmark harness at a tiny size (20 migrations, 2 runs), so it
# cannot rot. It starts its own PostgreSQL (not the pg fixture's) and, on first use,
# installs npm (apt) and the pinned dbmate into bench/.npm — only this test and
# bench/run.sh ever do. Full runs: bench/run.sh, by hand (see bench/README.md).
add_test(NAME bench.smoke
  COMMAND ${CMAKE_SOURCE_DIR}/bench/run.sh --smoke --pgboot $<TARGET_FILE:pgboot>
          --out ${CMAKE_BINARY_DIR}/bench-smoke)
set_tests_properties(bench.smoke PROPERTIES LABELS bench TIMEOUT 300
  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
