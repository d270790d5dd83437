// The one place where a pdsd binary turns an escaping exception into a log line and an exit code
// (docs/errors-and-logging.md): InputError → its message, exit 2; any other error → "fatal: ...", exit 1.
//
//   int main(int argc, char** argv) { return pdsd::guarded_main(run, argc, argv); }
#pragma once

namespace pdsd {

int guarded_main(int (*run)(int, char**), int argc, char** argv);

}  // namespace pdsd
