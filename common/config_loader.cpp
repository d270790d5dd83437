// YAML → JobConfig: key lookup, type conversion, ranges and choices, command-line overrides.
// Cross-key and filesystem checks live in config_checks.cpp.
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "common/config_schema.h"
#include "common/did_you_mean.h"
#include "common/job_config.h"
#include "common/log.h"

namespace pdsd {

void check_job_config(JobConfig& config);  // config_checks.cpp

std::string ConfigOrigin::describe() const {
  if (line > 0) return str(file, ":", line);
  return file;
}

namespace {

using config::FieldSpec;

[[noreturn]] void fail(const ConfigOrigin& origin, const std::string& key, const std::string& message) {
  throw ConfigError(str(origin.describe(), ": key '", key, "': ", message));
}

std::string node_kind(const YAML::Node& node) {
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  if (node.IsNull()) return "nothing";
  return "'" + node.Scalar() + "'";
}

bool parse_bool(const std::string& text, bool& out) {
  static const std::vector<std::string> yes = {"true", "True", "TRUE", "yes", "Yes", "on", "On"};
  static const std::vector<std::string> no = {"false", "False", "FALSE", "no", "No", "off", "Off"};
  if (std::find(yes.begin(), yes.end(), text) != yes.end()) return out = true, true;
  if (std::find(no.begin(), no.end(), text) != no.end()) return out = false, true;
  return false;
}

bool parse_int(const std::string& text, int64_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

bool parse_double(const std::string& text, double& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && std::isfinite(out);
}

std::string format_bound(double v) {
  std::ostringstream s;
  s << std::setprecision(12) << v;
  return s.str();
}

void check_range(const FieldSpec& spec, double value, const std::string& text, const ConfigOrigin& origin) {
  const auto& r = spec.range;
  bool low = r.min && (r.min_exclusive ? value <= *r.min : value < *r.min);
  bool high = r.max && (r.max_exclusive ? value >= *r.max : value > *r.max);
  if (!low && !high) return;
  std::string want;
  if (r.min && r.max) {
    want = str("in ", r.min_exclusive ? "(" : "[", format_bound(*r.min), ", ", format_bound(*r.max),
               r.max_exclusive ? ")" : "]");
  } else if (r.min) {
    want = str(r.min_exclusive ? "> " : ">= ", format_bound(*r.min));
  } else {
    want = str(r.max_exclusive ? "< " : "<= ", format_bound(*r.max));
  }
  fail(origin, spec.name, str("must be ", want, ", got ", text));
}

std::string scalar_text(const FieldSpec& spec, const YAML::Node& node, const ConfigOrigin& origin) {
  if (node.IsSequence() && spec.accepts_list) {
    std::string joined;
    for (const auto& item : node) {
      if (!item.IsScalar()) fail(origin, spec.name, "list items must be plain names, got " + node_kind(item));
      joined += (joined.empty() ? "" : ",") + item.Scalar();
    }
    return joined;
  }
  if (node.IsNull()) return "";
  if (!node.IsScalar()) fail(origin, spec.name, "expected a single value, got " + node_kind(node));
  return node.Scalar();
}

void apply(JobConfig& config, const std::string& key, const YAML::Node& node, const ConfigOrigin& origin) {
  const auto& ignored = config::ignored_llamafactory_keys();
  if (std::find(ignored.begin(), ignored.end(), key) != ignored.end()) {
    log::warn(origin.describe(), ": key '", key, "' is a LLaMA-Factory setting that changes nothing in pdsd; ignored");
    return;
  }
  const FieldSpec* spec = config::find_field(key);
  if (spec == nullptr) {
    auto candidates = job_config_keys();
    auto guess = did_you_mean(key, candidates);
    fail(origin, key, str("is not a pdsd setting", guess ? "; did you mean '" + *guess + "'?" : "",
                          " (docs/config.md lists every key)"));
  }
  if (auto previous = config.origins.find(key);
      previous != config.origins.end() && previous->second.file == origin.file && origin.line > 0) {
    fail(origin, key, str("is given twice (first at line ", previous->second.line, ")"));
  }
  std::string text = scalar_text(*spec, node, origin);
  std::visit(
      [&](auto member) {
        using T = std::remove_reference_t<decltype(config.*member)>;
        if constexpr (std::is_same_v<T, bool>) {
          if (!parse_bool(text, config.*member)) fail(origin, key, "expected true or false, got " + node_kind(node));
        } else if constexpr (std::is_same_v<T, int64_t>) {
          if (!parse_int(text, config.*member)) fail(origin, key, "expected a whole number, got " + node_kind(node));
          check_range(*spec, static_cast<double>(config.*member), text, origin);
        } else if constexpr (std::is_same_v<T, double>) {
          if (!parse_double(text, config.*member)) fail(origin, key, "expected a number, got " + node_kind(node));
          check_range(*spec, config.*member, text, origin);
        } else {
          // A key with words beside true and false (cuda_graphs: auto) takes YAML's other spellings of
          // the two (yes, On, False...) as a bool key would.
          std::string value = text;
          bool flag = false;
          if (std::find(spec->choices.begin(), spec->choices.end(), "true") != spec->choices.end() && parse_bool(value, flag)) {
            value = flag ? "true" : "false";
          }
          if (!spec->choices.empty() &&
              std::find(spec->choices.begin(), spec->choices.end(), value) == spec->choices.end()) {
            std::string list;
            for (const auto& c : spec->choices) list += (list.empty() ? "" : ", ") + (c.empty() ? "\"\"" : c);
            auto guess = did_you_mean(value, spec->choices);
            fail(origin, key, str("must be one of ", list, "; got '", value, "'",
                                  guess ? "; did you mean '" + *guess + "'?" : ""));
          }
          config.*member = value;
        }
      },
      spec->member);
  config.origins[key] = origin;
}

}  // namespace

std::vector<std::string> job_config_keys() {
  std::vector<std::string> keys;
  for (const auto& f : config::schema()) keys.push_back(f.name);
  return keys;
}

std::string job_config_reference_markdown() {
  JobConfig defaults;
  std::ostringstream out;
  std::string section;
  for (const auto& f : config::schema()) {
    if (f.section != section) {
      out << (section.empty() ? "" : "\n") << "### " << f.section << "\n\n| key | type | default | allowed | meaning |\n"
          << "| --- | --- | --- | --- | --- |\n";
      section = f.section;
    }
    std::string type, value, allowed;
    std::visit(
        [&](auto member) {
          using T = std::remove_cvref_t<decltype(defaults.*member)>;
          if constexpr (std::is_same_v<T, bool>) type = "bool", value = defaults.*member ? "true" : "false";
          else if constexpr (std::is_same_v<T, int64_t>) type = "int", value = std::to_string(defaults.*member);
          else if constexpr (std::is_same_v<T, double>) type = "float", value = format_bound(defaults.*member);
          else type = f.accepts_list ? "string or list" : "string", value = defaults.*member;
        },
        f.member);
    if (!f.choices.empty()) {
      for (const auto& c : f.choices) allowed += (allowed.empty() ? "" : ", ") + (c.empty() ? std::string("\"\"") : c);
    } else if (f.range.min || f.range.max) {
      allowed = str(f.range.min ? str(f.range.min_exclusive ? "> " : ">= ", format_bound(*f.range.min)) : "",
                    f.range.min && f.range.max ? ", " : "",
                    f.range.max ? str(f.range.max_exclusive ? "< " : "<= ", format_bound(*f.range.max)) : "");
    }
    out << "| `" << f.name << "` | " << type << " | " << (value.empty() ? "" : "`" + value + "`") << " | " << allowed
        << " | " << f.help << " |\n";
  }
  out << "\nAccepted and ignored with a warning (LLaMA-Factory keys with no effect here): ";
  std::string ignored;
  for (const auto& k : config::ignored_llamafactory_keys()) ignored += (ignored.empty() ? "`" : ", `") + k + "`";
  out << ignored << ".\n";
  return out.str();
}

JobConfig parse_job_config(const std::string& yaml_text, const std::string& name,
                           const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(str(name, ":", e.mark.line + 1, ":", e.mark.column + 1, ": not valid YAML: ", e.msg));
  }
  if (!root.IsNull() && !root.IsMap()) {
    throw ConfigError(str(name, ": the top level must be a mapping of `key: value` lines, got ", node_kind(root)));
  }
  JobConfig config;
  config.source_file = name;
  for (const auto& entry : root) {
    ConfigOrigin origin{name, entry.first.Mark().line + 1};
    if (!entry.first.IsScalar()) throw ConfigError(str(origin.describe(), ": keys must be plain names"));
    apply(config, entry.first.Scalar(), entry.second, origin);
  }
  for (const auto& item : overrides) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw ConfigError(str("command line: override '", item, "' must look like key=value"));
    }
    std::string key = item.substr(0, eq);
    std::string value = item.substr(eq + 1);
    YAML::Node node;
    try {
      node = value.empty() ? YAML::Node(YAML::NodeType::Null) : YAML::Load(value);
    } catch (const YAML::Exception& e) {
      throw ConfigError(str("command line: override '", item, "': not a valid value: ", e.msg));
    }
    apply(config, key, node, ConfigOrigin{"command line override '" + item + "'", 0});
  }
  check_job_config(config);
  return config;
}

JobConfig load_job_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw ConfigError(str(path, ": cannot open the config file: ", std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  return parse_job_config(text.str(), path, overrides);
}

std::string JobConfig::to_yaml() const {
  std::ostringstream out;
  std::string section;
  for (const auto& f : config::schema()) {
    if (f.section != section) {
      out << (section.empty() ? "" : "\n") << "### " << f.section << "\n";
      section = f.section;
    }
    out << f.name << ": ";
    std::visit(
        [&](auto member) {
          using T = std::remove_cvref_t<decltype(this->*member)>;
          if constexpr (std::is_same_v<T, bool>) out << (this->*member ? "true" : "false");
          else if constexpr (std::is_same_v<T, std::string>) out << YAML::Node(this->*member);
          else out << this->*member;
        },
        f.member);
    out << "\n";
  }
  return out.str();
}

}  // namespace pdsd
