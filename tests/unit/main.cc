// The unit test runner (doctest); every tests/unit/*_test.cc links into it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
