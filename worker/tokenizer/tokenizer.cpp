// Loading tokenizer.json into its components, and the encode / decode pipelines (see tokenizer.h).
#include "worker/tokenizer/tokenizer.h"

#include "common/error.h"
#include "common/log.h"
#include "worker/tokenizer/added_tokens.h"
#include "worker/tokenizer/bpe_model.h"
#include "worker/tokenizer/decoder.h"
#include "worker/tokenizer/json_field.h"
#include "worker/tokenizer/normalizer.h"
#include "worker/tokenizer/piece.h"
#include "worker/tokenizer/post_processor.h"
#include "worker/tokenizer/pre_tokenizer.h"
#include "worker/tokenizer/utf8.h"

namespace pdsd {

struct Tokenizer::Impl {
  std::string path;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  BpeModel model;
  AddedVocabulary added;
  std::unique_ptr<Decoder> decoder;
  std::unique_ptr<PostProcessor> post_processor;
};

Tokenizer Tokenizer::from_file(const std::string& tokenizer_json_path) {
  const nlohmann::json json = read_json_file(tokenizer_json_path);
  auto impl = std::make_shared<Impl>();
  impl->path = tokenizer_json_path;
  JsonField root(json, "", impl->path);
  if (!root.is_object()) root.fail("must be a JSON object");
  if (auto version = root.find("version"); version && version->as_string() != "1.0")
    version->fail(str("is \"", version->as_string(), "\"; pdsd reads tokenizer.json version 1.0"));
  for (const char* key : {"truncation", "padding"}) {
    if (root.find(key))
      log::warn(impl->path, ": ", key, " is set in the file and ignored, as transformers ignores it unless a call "
                "asks for it (pdsd cuts sequences to cutoff_len itself)");
  }
  if (auto n = root.find("normalizer")) impl->normalizer = Normalizer::from_json(*n);
  if (auto p = root.find("pre_tokenizer")) impl->pre_tokenizer = PreTokenizer::from_json(*p);
  impl->model = BpeModel::from_json(root.at("model"));
  impl->added = AddedVocabulary::from_json(root.find("added_tokens"), impl->model, impl->normalizer.get());
  if (auto d = root.find("decoder")) impl->decoder = Decoder::from_json(*d);
  if (auto p = root.find("post_processor")) impl->post_processor = PostProcessor::from_json(*p);

  // Metaspace's prepend_scheme "first" asks whether a piece begins at byte 0 of the input. pdsd
  // knows that exactly unless a normalizer may have inserted text that a later cut then splits off
  // (HF would map the cut back through its alignments); refuse rather than guess.
  int metaspace_first = impl->pre_tokenizer ? impl->pre_tokenizer->metaspace_first_step() : -1;
  if (metaspace_first >= 0 && impl->normalizer && (metaspace_first > 0 || impl->added.has_normalized_tokens()))
    root.at("pre_tokenizer").fail(
        "uses Metaspace with prepend_scheme \"first\" after another split, together with a normalizer: pdsd does "
        "not support that combination");
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& t = *impl_;
  if (size_t bad = utf8::first_invalid(text); bad != std::string_view::npos)
    throw InputError(str("text to encode is not valid UTF-8 (at byte ", bad, " of ", text.size(), ")"));

  thread_local std::vector<Piece> pieces;
  thread_local TextArena arena;
  pieces.clear();
  arena.clear();
  pieces.push_back(Piece{text, -1, true, false});

  // 1. Added tokens matched in the raw text; 2. the rest normalized, then the normalized ones.
  t.added.split(pieces, /*normalized=*/false);
  if (t.normalizer) {
    std::string normalized;
    for (Piece& p : pieces) {
      if (p.added_token < 0 && t.normalizer->normalize(p.text, normalized)) p.text = arena.keep(std::move(normalized));
    }
  }
  t.added.split(pieces, /*normalized=*/true);
  // 3. Words.
  if (t.pre_tokenizer) t.pre_tokenizer->pre_tokenize(pieces, arena);
  // 4. Ids.
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const Piece& p : pieces) {
    if (p.added_token >= 0) {
      ids.push_back(p.added_token);
    } else {
      t.model.tokenize(p.text, p.byte_level, ids);
    }
  }
  if (t.post_processor) t.post_processor->process(ids, add_special_tokens);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const Impl& t = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* token = t.added.id_to_token(id);
    if (token == nullptr) token = t.model.id_to_token(id);
    if (token == nullptr) continue;  // an unknown id is skipped, as HF does
    if (skip_special_tokens && t.added.is_special(*token)) continue;
    tokens.push_back(*token);
  }
  return decode_tokens(t.decoder.get(), std::move(tokens));
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = impl_->added.token_to_id(token)) return id;
  return impl_->model.token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (const std::string* t = impl_->added.id_to_token(id)) return *t;
  if (const std::string* t = impl_->model.id_to_token(id)) return *t;
  return std::nullopt;
}

size_t Tokenizer::vocab_size() const {
  return impl_->model.vocab_size() + impl_->added.size() - impl_->added.overlap_with_model();
}

const std::string& Tokenizer::path() const { return impl_->path; }

}  // namespace pdsd
