// The table of every job-config key: its type, default (the JobConfig member initialiser), allowed
// range or choices, and a one-line description. Loading, validation, docs and to_yaml() all read it,
// so a key is added in exactly one place.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/job_config.h"

namespace pdsd::config {

using Member = std::variant<bool JobConfig::*, int64_t JobConfig::*, double JobConfig::*, std::string JobConfig::*>;

struct Range {
  std::optional<double> min = std::nullopt;  // inclusive
  std::optional<double> max = std::nullopt;  // inclusive
  bool min_exclusive = false;
  bool max_exclusive = false;
};

struct FieldSpec {
  std::string name;
  std::string section;
  Member member;
  Range range;
  std::vector<std::string> choices;  // for strings; empty: any
  bool accepts_list = false;         // a YAML sequence is joined with commas
  std::string help;
};

const std::vector<FieldSpec>& schema();
const FieldSpec* find_field(const std::string& name);

// LLaMA-Factory keys that pdsd reads but that change nothing here (it always behaves the way they
// ask, or they concern Python-side machinery). Accepted with a warning so LF files run unchanged.
const std::vector<std::string>& ignored_llamafactory_keys();

}  // namespace pdsd::config
