# Cross-compiles pgboot for linux/arm64 on a Debian 12 amd64 host; used by
# scripts/build-static.sh, which prepares what it points at:
#   - crossbuild-essential-arm64 (aarch64-linux-gnu-gcc/g++, the arm64 glibc);
#   - libssl-dev:arm64 (Multi-Arch: same, in /usr/lib/aarch64-linux-gnu);
#   - PGBOOT_SYSROOT: the arm64 libpq-dev and postgresql-server-dev-15 archives
#     unpacked with dpkg-deb -x (neither is Multi-Arch, so apt cannot install them).
# The header-only libraries (spdlog, fmt, toml++, cxxopts) are the host's:
# Debian's cross compiler searches /usr/include after its own directories.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

if(NOT PGBOOT_SYSROOT)
  set(PGBOOT_SYSROOT "$ENV{PGBOOT_SYSROOT}")
endif()
if(NOT PGBOOT_SYSROOT)
  message(FATAL_ERROR "set PGBOOT_SYSROOT to the unpacked arm64 libpq-dev/postgresql-server-dev-15")
endif()
# try_compile projects read this file again: hand them the sysroot too.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES PGBOOT_SYSROOT)
set(PGBOOT_PQ_ROOT "${PGBOOT_SYSROOT}" CACHE PATH "" FORCE)
set(PGSERVER_ROOT "${PGBOOT_SYSROOT}" CACHE PATH "" FORCE)

# Find only arm64 libraries (libssl.a, libcrypto.a) in the multiarch directories,
# never the host's /usr/lib/x86_64-linux-gnu.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu)

# CTest runs the cross-built unit tests through qemu-user (package qemu-user-static).
find_program(PGBOOT_QEMU qemu-aarch64-static)
if(PGBOOT_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${PGBOOT_QEMU})
endif()
