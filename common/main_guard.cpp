#include "common/main_guard.h"

#include <exception>

#include "common/error.h"
#include "common/log.h"

namespace pdsd {

int guarded_main(int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const InputError& e) {
    log::error(e.what());
    return 2;
  } catch (const std::exception& e) {
    log::error("fatal: ", e.what());
    return 1;
  }
}

}  // namespace pdsd
