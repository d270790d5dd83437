// Role names and the turn-order rule shared by the record readers and the chat templates.
#include "worker/data/conversation.h"

#include "common/error.h"

namespace pdsd::data {

std::string_view role_name(Role role) {
  switch (role) {
    case Role::system: return "system";
    case Role::user: return "user";
    case Role::assistant: return "assistant";
  }
  return "?";
}

void check_conversation(const Conversation& conversation) {
  const std::string where = conversation.source.empty() ? "conversation" : conversation.source;
  const auto& turns = conversation.turns;
  if (turns.empty()) throw InputError(str(where, ": has no turns"));
  for (size_t i = 0; i < turns.size(); ++i) {
    Role expected = i % 2 == 0 ? Role::user : Role::assistant;
    if (turns[i].role != expected) {
      throw InputError(str(where, ": turn ", i, " is ", role_name(turns[i].role), " but turns must alternate ",
                           "user, assistant, user, ... (expected ", role_name(expected), ")"));
    }
  }
  if (turns.back().role != Role::assistant) {
    throw InputError(str(where, ": ends on a user turn; the last turn must be the assistant's response"));
  }
}

}  // namespace pdsd::data
