// Every binary that links libtorch must bind standard-library calls to the system's libstdc++, not to
// the copies libtorch_cpu.so exports (see cmake/Dependencies.cmake). This checks where the dynamic
// linker resolved a few std::filesystem functions that libtorch_cpu.so also defines.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "worker/model_config.h"

namespace fs = std::filesystem;

namespace {

template <class F>
std::string library_of(F function) {
  void* address = nullptr;
  std::memcpy(&address, &function, sizeof address);  // Itanium ABI: a non-virtual member pointer starts with the address
  Dl_info info{};
  if (::dladdr(address, &info) == 0 || info.dli_fname == nullptr) return "(unknown)";
  return info.dli_fname;
}

TEST(LibstdcxxBinding, FilesystemResolvesToTheSystemLibstdcxx) {
  // Touch the model loader so libtorch is really linked into this test, as into pdsd-worker.
  EXPECT_EQ(pdsd::read_model_config(std::string(PDSD_SOURCE_DIR) + "/examples/tiny-qwen2").model_type, "qwen2");
  std::string parent_path = library_of(&fs::path::parent_path);
  std::string has_filename = library_of(&fs::path::has_filename);
  EXPECT_NE(parent_path.find("libstdc++"), std::string::npos) << "path::parent_path bound to " << parent_path;
  EXPECT_NE(has_filename.find("libstdc++"), std::string::npos) << "path::has_filename bound to " << has_filename;
}

}  // namespace
