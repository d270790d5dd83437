// `pdsd-worker export`: a checkpoint (saved at any world size and ZeRO stage) or a PEFT adapter,
// plus its base model, to a Hugging Face model dir with LoRA merged (sharded by export_size) or to a
// PEFT adapter dir. Options: worker/export/export_options.h; docs/checkpoints.md.
#pragma once

#include <string>

#include "worker/export/export_options.h"

namespace pdsd {

// Returns a one-line summary of what was written.
std::string run_export(const ExportOptions& options);

}  // namespace pdsd
