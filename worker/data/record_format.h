// One dataset record → one Conversation, by the record's LLaMA-Factory formatting:
//
//   alpaca   {"instruction", "input", "output", "system", "history": [[user, assistant], ...]}
//            user turn = instruction + "\n" + input (either left out when empty), history before it;
//   sharegpt {"conversations": [{"from": "human"|"gpt", "value": ...}, ...], "system"}
//            role/content keys and role values from the dataset's tags, so OpenAI-style
//            {"messages": [{"role", "content"}]} is the same reader with other tags; a leading
//            system message becomes the system prompt (and overrides the system column).
//
// A record that cannot become a valid conversation — a missing field, a wrong type, no turns, turns
// out of order (two user turns in a row, ending on a user turn), a tool-use turn — throws
// BadRecordError whose message names the file, the record index and the field:
//   data/chat.jsonl: record 7 (line 8): field 'conversations[2].from': two user turns in a row ...
#pragma once

#include "common/error.h"
#include "worker/data/conversation.h"
#include "worker/data/dataset_info.h"
#include "worker/data/json_records.h"

namespace pdsd::data {

class BadRecordError : public InputError {
 public:
  using InputError::InputError;
};

Conversation conversation_from_record(const JsonRecord& record, const DatasetAttr& attr);

}  // namespace pdsd::data
