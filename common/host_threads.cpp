#include "common/host_threads.h"

#include <string_view>

namespace pdsd {

std::optional<int> host_operator_threads(bool drives_gpu, const char* omp_num_threads, const char* defaulted) {
  if (!drives_gpu) return std::nullopt;
  const bool user_chose = omp_num_threads != nullptr && (defaulted == nullptr || std::string_view(defaulted) != "1");
  if (user_chose) return std::nullopt;
  return 1;
}

}  // namespace pdsd
