// A function computed with libtorch, declared with plain types so that a test translation unit that
// includes protobuf/gRPC headers can call it without seeing torch's headers (cmake/Dependencies.cmake).
#pragma once

#include <string>

namespace pdsd::testing {
// Sum of squares of every weight in the model dir, computed by libtorch.
double torch_weights_fingerprint(const std::string& model_dir);
}
