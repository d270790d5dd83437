// pdsd's chat templates against the real peer: for each template whose model family ships an
// official Hugging Face chat template, the rendered text of every conversation in
// tests/data/chat_templates/conversations.json (single and multi turn, with and without a system
// prompt, whitespace, unicode, template-lookalike text, an empty response) must equal what
// transformers' apply_chat_template(messages, tokenize=False) renders from that model's jinja.
// The expected strings are computed by tests/support/hf_chat_template_peer.py at test time.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include "tests/support/run_command.h"
#include "worker/data/chat_template.h"

namespace pdsd::data {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const char* kFixtures = "tests/data/chat_templates";

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return json::parse(in);
}

// OpenAI-style messages (a leading system message, then user/assistant) → Conversation.
Conversation to_conversation(const json& entry) {
  Conversation c;
  c.source = entry.at("name").get<std::string>();
  for (const auto& m : entry.at("messages")) {
    std::string role = m.at("role");
    std::string content = m.at("content");
    if (role == "system") {
      c.system = content;
    } else {
      c.turns.push_back({role == "user" ? Role::user : Role::assistant, content});
    }
  }
  return c;
}

class ChatTemplateMatchesHf : public ::testing::TestWithParam<std::string> {
 protected:
  // One run of the peer renders every template (loading transformers takes seconds).
  static void SetUpTestSuite() {
    fs::path out = fs::temp_directory_path() / ("pdsd-hf-chat-templates-" + std::to_string(::getpid()) + ".json");
    auto result = testing::run_command(std::string(PDSD_PYTHON) + " tests/support/hf_chat_template_peer.py " +
                                       kFixtures + " examples/tiny-qwen2 " + out.string(), 300);
    peer_log_ = result.output;
    if (result.exit_code == 0) peer_ = read_json(out);
    fs::remove(out);
  }

  static json peer_;
  static std::string peer_log_;
};

json ChatTemplateMatchesHf::peer_;
std::string ChatTemplateMatchesHf::peer_log_;

TEST_P(ChatTemplateMatchesHf, RendersWhatTransformersRenders) {
  ASSERT_TRUE(peer_.contains("templates")) << "the transformers peer failed:\n" << peer_log_;
  const std::string name = GetParam();
  ASSERT_TRUE(peer_["templates"].contains(name)) << name << " is missing from " << kFixtures << "/peers.json";
  const json& expected = peer_["templates"][name];
  const json conversations = read_json(fs::path(kFixtures) / "conversations.json");
  ASSERT_GE(conversations.size(), 8u);

  ChatTemplate t = ChatTemplate::named(name);
  size_t compared = 0;
  for (const auto& entry : conversations) {
    Conversation c = to_conversation(entry);
    ASSERT_TRUE(expected.contains(c.source)) << c.source;
    EXPECT_EQ(t.render(c), expected[c.source].get<std::string>())
        << "template " << name << ", conversation " << c.source << " (transformers " << peer_["transformers"] << ")";
    ++compared;
  }
  EXPECT_EQ(compared, conversations.size());
  RecordProperty("conversations_compared", static_cast<int>(compared));
  std::cout << "[ compared ] " << name << ": " << compared << " conversations against transformers "
            << peer_["transformers"].get<std::string>() << "\n";
}

INSTANTIATE_TEST_SUITE_P(OfficialTemplates, ChatTemplateMatchesHf,
                         ::testing::Values("qwen", "llama3", "llama2", "chatglm3"),
                         [](const auto& info) { return info.param; });

// Every template listed for comparison is one pdsd has, and none is left out of the comparison above.
TEST(ChatTemplateMatchesHfFixtures, PeerListMatchesTheComparedTemplates) {
  json peers = read_json(fs::path(kFixtures) / "peers.json");
  std::vector<std::string> listed;
  for (const auto& [name, peer] : peers.items()) {
    listed.push_back(name);
    EXPECT_NO_THROW(ChatTemplate::named(name)) << name;
    EXPECT_TRUE(fs::is_regular_file(fs::path(kFixtures) / peer.at("jinja").get<std::string>())) << name;
  }
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, (std::vector<std::string>{"chatglm3", "llama2", "llama3", "qwen"}));
}

}  // namespace
}  // namespace pdsd::data
