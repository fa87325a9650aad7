// Helpers shared by the tests: fixture paths and seeded random data.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace metallic::test {

/// Path of `relative` inside the shared fixture folder (env METALLIC_SHARED, default ../shared).
inline std::filesystem::path shared_path(const std::string& relative) {
  const char* root = std::getenv("METALLIC_SHARED");
  std::filesystem::path base = root ? root : "../shared";
  return base / relative;
}

}  // namespace metallic::test
