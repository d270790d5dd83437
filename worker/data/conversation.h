// The normalized form every dataset record becomes, whatever its file format (alpaca, sharegpt,
// OpenAI messages): an optional system prompt and alternating user/assistant turns, starting with a
// user turn and ending with an assistant turn. Chat templates take only this, so a template never
// needs to know where a conversation came from — except to name it in an error.
//
//   Conversation c{.system = "Be brief.", .turns = {{Role::user, "Hi"}, {Role::assistant, "Hello!"}}};
//   check_conversation(c);  // throws InputError naming c.source when the turns do not alternate
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pdsd::data {

enum class Role { system, user, assistant };

std::string_view role_name(Role role);

struct Turn {
  Role role = Role::user;
  std::string content;
  bool operator==(const Turn&) const = default;
};

struct Conversation {
  std::string system;        // empty: none given (a template may then use its default system prompt)
  std::vector<Turn> turns;   // user, assistant, user, assistant, ...
  std::string tools;         // LLaMA-Factory's `tools` column as JSON text; no template renders it yet
  std::string source;        // where it came from, for messages: "data/x.json: record 12"
  bool operator==(const Conversation&) const = default;
};

// Throws InputError (prefixed with `source`) unless the turns alternate user/assistant, start with
// a user turn and end with an assistant turn, and there is at least one exchange.
void check_conversation(const Conversation& conversation);

}  // namespace pdsd::data
