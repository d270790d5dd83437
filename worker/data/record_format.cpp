// The alpaca and sharegpt record readers (see record_format.h). They follow LLaMA-Factory's
// converters (src/llamafactory/data/converter.py) in what they accept and how they join fields, but
// where LLaMA-Factory drops a broken record with a log line, or crashes on a wrong type, these say
// which record and which field, and the loader's policy decides between skipping and stopping.
#include "worker/data/record_format.h"

#include <optional>

namespace pdsd::data {

namespace {

using nlohmann::json;

// Builds messages that all start with the record's location.
class RecordContext {
 public:
  explicit RecordContext(const JsonRecord& record) : where_(record.describe()) {}

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw BadRecordError(str(where_, ": field '", field, "': ", problem));
  }
  [[noreturn]] void fail_record(const std::string& problem) const { throw BadRecordError(str(where_, ": ", problem)); }

  // A string-valued field: nullopt when absent or null; a BadRecordError for any other type.
  std::optional<std::string> optional_string(const json& object, const std::string& key, const std::string& field) const {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) fail(field, str("expected a string, got ", it->type_name()));
    return it->get<std::string>();
  }

  std::string required_string(const json& object, const std::string& key, const std::string& field,
                              const std::string& what) const {
    auto value = optional_string(object, key, field);
    if (!value) fail(field, str("missing (", what, ")"));
    return *value;
  }

  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

void refuse_tools(const RecordContext& ctx, const json& record, const std::string& column) {
  if (column.empty()) return;
  auto it = record.find(column);
  if (it == record.end() || it->is_null()) return;
  bool empty = it->is_string() ? it->get<std::string>().empty() : (it->is_array() || it->is_object()) && it->empty();
  if (!empty) ctx.fail(column, "tool descriptions (function calling) are not supported yet");
}

std::string system_from_column(const RecordContext& ctx, const json& record, const std::string& column) {
  if (column.empty()) return "";
  return ctx.optional_string(record, column, column).value_or("");
}

Conversation from_alpaca(const RecordContext& ctx, const json& record, const DatasetAttr& attr) {
  const DatasetColumns& col = attr.columns;
  Conversation c;
  c.system = system_from_column(ctx, record, col.system);
  refuse_tools(ctx, record, col.tools);

  if (!col.history.empty()) {
    auto it = record.find(col.history);
    if (it != record.end() && !it->is_null()) {
      if (!it->is_array()) ctx.fail(col.history, str("expected a list of [user, assistant] pairs, got ", it->type_name()));
      for (size_t i = 0; i < it->size(); ++i) {
        const json& pair = (*it)[i];
        std::string field = str(col.history, "[", i, "]");
        if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
          ctx.fail(field, str("expected a [user, assistant] pair of strings, got ", pair.dump()));
        }
        c.turns.push_back({Role::user, pair[0].get<std::string>()});
        c.turns.push_back({Role::assistant, pair[1].get<std::string>()});
      }
    }
  }

  // LLaMA-Factory: "\n".join of the non-empty ones among prompt and query.
  std::string user;
  if (!col.prompt.empty()) user = ctx.required_string(record, col.prompt, col.prompt, "the instruction");
  if (!col.query.empty()) {
    std::string query = ctx.optional_string(record, col.query, col.query).value_or("");
    if (!query.empty()) user = user.empty() ? query : user + "\n" + query;
  }
  c.turns.push_back({Role::user, std::move(user)});
  c.turns.push_back({Role::assistant, ctx.required_string(record, col.response, col.response, "the response to train on")});
  return c;
}

Conversation from_sharegpt(const RecordContext& ctx, const json& record, const DatasetAttr& attr) {
  const DatasetColumns& col = attr.columns;
  const DatasetTags& tag = attr.tags;
  Conversation c;
  c.system = system_from_column(ctx, record, col.system);
  refuse_tools(ctx, record, col.tools);

  auto it = record.find(col.messages);
  if (it == record.end() || it->is_null()) ctx.fail(col.messages, "missing (the list of messages)");
  if (!it->is_array()) ctx.fail(col.messages, str("expected a list of messages, got ", it->type_name()));
  const json& messages = *it;

  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string at = str(col.messages, "[", i, "]");
    if (!m.is_object()) ctx.fail(at, str("expected a message object, got ", m.type_name()));
    const std::string role_field = str(at, ".", tag.role_tag);
    std::string role = ctx.required_string(m, tag.role_tag, role_field, "the role");
    std::string content = ctx.required_string(m, tag.content_tag, str(at, ".", tag.content_tag), "the message text");

    if (!tag.system_tag.empty() && role == tag.system_tag) {
      if (i != 0) ctx.fail(role_field, str("a '", role, "' (system) message may only come first"));
      c.system = std::move(content);  // overrides the system column, as in LLaMA-Factory
      continue;
    }
    auto calls = m.find("tool_calls");  // OpenAI-style assistant function calls
    bool has_calls = calls != m.end() && !calls->is_null() && !calls->empty();
    if ((!tag.observation_tag.empty() && role == tag.observation_tag) ||
        (!tag.function_tag.empty() && role == tag.function_tag) || has_calls) {
      ctx.fail(role_field, str("'", role, "': tool-use turns (function calls, observations) are not supported yet"));
    }
    Role r = Role::user;
    if (role == tag.assistant_tag) {
      r = Role::assistant;
    } else if (role != tag.user_tag) {
      ctx.fail(role_field, str("role '", role, "' is neither '", tag.user_tag, "' (user) nor '", tag.assistant_tag,
                               "' (assistant); check the dataset's \"tags\" in ", attr.info_file));
    }
    Role expected = c.turns.size() % 2 == 0 ? Role::user : Role::assistant;
    if (r != expected) {
      std::string why = c.turns.empty() ? "the conversation starts with an assistant turn"
                        : r == Role::user ? "two user turns in a row"
                                          : "two assistant turns in a row";
      ctx.fail(role_field, str(why, " ('", role, "'); turns must alternate ", tag.user_tag, ", ", tag.assistant_tag,
                               ", ", tag.user_tag, ", ..."));
    }
    c.turns.push_back({r, std::move(content)});
  }
  if (c.turns.empty()) ctx.fail(col.messages, "no user or assistant messages (empty conversation)");
  if (c.turns.back().role != Role::assistant) {
    ctx.fail(col.messages, "ends on a user turn: the last message must be the assistant's response to train on");
  }
  return c;
}

}  // namespace

Conversation conversation_from_record(const JsonRecord& record, const DatasetAttr& attr) {
  RecordContext ctx(record);
  if (!record.value.is_object()) ctx.fail_record(str("expected a JSON object, got ", record.value.type_name()));
  Conversation c = attr.formatting == Formatting::alpaca ? from_alpaca(ctx, record.value, attr)
                                                         : from_sharegpt(ctx, record.value, attr);
  c.source = ctx.where();
  return c;
}

}  // namespace pdsd::data
