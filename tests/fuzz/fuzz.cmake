# libFuzzer targets (tests/fuzz/README.md): one executable per fuzz_*.cc, built
# with clang and -DPGBOOT_FUZZ=ON in a build tree of their own (scripts/test.sh
# uses build/fuzz). pgboot_core is instrumented by the options in CMakeLists.txt.
file(GLOB PGBOOT_FUZZ_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/fuzz_*.cc)
add_custom_target(fuzz_all)
foreach(src ${PGBOOT_FUZZ_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE pgboot_core)
  target_compile_options(${name} PRIVATE ${PGBOOT_WARNINGS})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  add_dependencies(fuzz_all ${name})
endforeach()
# The redaction target feeds libpq's own parse errors through pgboot's masking.
if(TARGET fuzz_redact)
  target_include_directories(fuzz_redact PRIVATE /usr/include/postgresql)
  target_link_libraries(fuzz_redact PRIVATE pq)
endif()
