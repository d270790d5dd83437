// The only translation unit that includes ProcessGroupGloo.hpp, and so gloo's headers.
//
// The torch wheel ships libtorch's compiled Gloo but not gloo's headers, so this file is compiled
// with Debian 12's libgloo-dev headers (gloo of 2022-05; libtorch 2.11 was built from gloo of late
// 2025). Those differ from libtorch's in layout — gloo::Context gained/lost a vtable pointer, the
// Store and transport classes have other virtual functions — so this file may only use what does not
// depend on gloo's layout: ProcessGroupGloo's out-of-line constructor and device factories
// (compiled in libtorch) and shared_ptrs to gloo objects that libtorch creates and destroys. It must
// not call anything inline that reaches into a gloo object (getContext(), _getStore(), GlooStore,
// ProcessGroupGlooDetail.hpp, setTimeout()). worker/dist/check_gloo_symbols.cmake enforces this after
// every build: the library may neither define nor reference any gloo:: symbol, nor define any of
// ProcessGroupGloo's own. Debian's libgloo.so itself is never linked: libtorch_cpu exports its own
// gloo symbols, and two copies in one process bind to each other and crash.
#include "worker/dist/gloo_process_group.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/headeronly/version.h>

namespace pdsd::dist {

// ABI canaries. The sizes were measured against libtorch_cpu.so of torch 2.11.0 (its own
// ProcessGroupGloo::split allocates the object with operator new(0x1e8)); make_intrusive below
// allocates sizeof(ProcessGroupGloo) from *our* view of the header, so a mismatch would corrupt
// memory. A torch upgrade fails here on purpose: re-check that the object libtorch allocates still
// has this size (objdump -d libtorch_cpu.so, ProcessGroupGloo::split), that this file's object still
// passes check_gloo_symbols.cmake, and only then update the numbers and the version.
static_assert(TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR == 11,
              "torch changed: re-check the Gloo ABI assumptions in gloo_process_group.cpp");
static_assert(sizeof(c10d::ProcessGroupGloo) == 0x1e8,
              "c10d::ProcessGroupGloo's size differs from libtorch 2.11's (0x1e8): headers out of step");
static_assert(sizeof(c10d::ProcessGroupGloo::Options) == 0xb0,
              "c10d::ProcessGroupGloo::Options's size differs from libtorch 2.11's (0xb0): headers out of step");

c10::intrusive_ptr<c10d::Backend> make_gloo_process_group(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                          int size, std::chrono::milliseconds timeout,
                                                          const GlooDeviceChoice& device) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  if (!device.interfaces.empty()) {
    for (const auto& name : device.interfaces) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
    }
  } else if (!device.hostname.empty()) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(device.hostname));
  } else {
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  // Two threads (c10d's default) let one collective's send and another's receive overlap; the
  // engine issues them one at a time today, so more would only idle.
  options->threads = 2;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
}

}  // namespace pdsd::dist
