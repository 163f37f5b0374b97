// Broken tokenizer files, unsupported components and bad encode/decode inputs:
// each is a jetmoe::Error whose message names the file, the field or the value.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "jetmoe/error.h"
#include "scoped_temp_dir.h"
#include "tokenizer_fixture.h"

namespace jetmoe::testing {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const nlohmann::json& reference_json() {
  static const nlohmann::json j = nlohmann::json::parse(slurp(llama2_dir() + "/tokenizer.json"));
  return j;
}

class BadTokenizerFile : public ::testing::Test {
 protected:
  // Writes `text` as the named file and expects loading it to fail with a
  // message containing every one of `needles`.
  void expect_error(const std::string& name, const std::string& text, std::vector<std::string> needles) {
    std::ofstream(dir_.file(name), std::ios::binary) << text;
    try {
      Tokenizer::from_pretrained(dir_.file(name));
      ADD_FAILURE() << "loaded without error";
    } catch (const Error& e) {
      for (const std::string& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << "message: " << e.what() << "\nmissing: " << n;
    }
  }
  void expect_json_error(const std::function<void(nlohmann::json&)>& edit, std::vector<std::string> needles) {
    nlohmann::json j = reference_json();
    edit(j);
    needles.push_back("tokenizer.json");
    expect_error("tokenizer.json", j.dump(), needles);
  }
  ScopedTempDir dir_;
};

TEST_F(BadTokenizerFile, TruncatedJson) {
  const std::string full = slurp(llama2_dir() + "/tokenizer.json");
  for (const size_t n : {size_t{0}, size_t{1}, size_t{1000}, full.size() / 2, full.size() - 2})
    expect_error("tokenizer.json", full.substr(0, n), {"tokenizer.json", "not valid JSON"});
}

TEST_F(BadTokenizerFile, NotAnObject) { expect_error("tokenizer.json", "[1, 2]", {"expected an object"}); }

TEST_F(BadTokenizerFile, UnknownComponentTypesAreNamed) {
  expect_json_error([](auto& j) { j["model"]["type"] = "WordPiece"; }, {"model.type", "WordPiece", "not supported"});
  expect_json_error([](auto& j) { j["normalizer"]["normalizers"][1] = {{"type", "NFKC"}}; }, {"normalizer.normalizers[1].type", "NFKC"});
  expect_json_error([](auto& j) { j["pre_tokenizer"] = {{"type", "ByteLevel"}}; }, {"pre_tokenizer.type", "ByteLevel"});
  expect_json_error([](auto& j) { j["decoder"]["decoders"][2] = {{"type", "WordPiece"}}; }, {"decoder.decoders[2].type", "WordPiece"});
  expect_json_error([](auto& j) { j["post_processor"] = {{"type", "BertProcessing"}}; }, {"post_processor.type", "BertProcessing"});
  expect_json_error([](auto& j) { j["normalizer"]["normalizers"][1]["pattern"] = {{"Regex", " +"}}; }, {"Regex"});
  expect_json_error([](auto& j) { j["model"]["dropout"] = 0.1; }, {"model.dropout"});
}

TEST_F(BadTokenizerFile, InconsistentModel) {
  expect_json_error([](auto& j) { j["model"]["merges"][0] = "\xE2\x96\x81 nosuchpiece"; }, {"model.merges[0]", "nosuchpiece"});
  expect_json_error([](auto& j) { j["model"]["merges"][3] = "onlyone"; }, {"model.merges[3]"});
  expect_json_error([](auto& j) { j["model"]["vocab"]["x"] = -5; }, {"model.vocab[\"x\"]"});
  expect_json_error([](auto& j) { j["model"]["vocab"]["zzz-new"] = 15043; }, {"15043", "also used"});
  expect_json_error([](auto& j) { j["model"]["unk_token"] = "<nope>"; }, {"model.unk_token", "<nope>"});
  expect_json_error([](auto& j) { j["model"].erase("vocab"); }, {"model.vocab", "missing"});
  expect_json_error([](auto& j) { j["added_tokens"][0]["id"] = "zero"; }, {"added_tokens[0].id", "integer"});
  expect_json_error([](auto& j) { j["post_processor"]["single"][0]["SpecialToken"]["id"] = "<x>"; }, {"<x>"});
  expect_json_error([](auto& j) { j["decoder"]["decoders"][3]["start"] = "1"; }, {"decoder.decoders[3].start"});
}

TEST_F(BadTokenizerFile, BadConfig) {
  fs::copy_file(llama2_dir() + "/tokenizer.json", dir_.file("tokenizer.json"));
  auto expect = [&](const std::string& config, const std::string& needle) {
    std::ofstream(dir_.file("tokenizer_config.json")) << config;
    try {
      Tokenizer::from_pretrained(dir_.path());
      ADD_FAILURE() << "loaded " << config;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("tokenizer_config.json"), std::string::npos) << e.what();
    }
  };
  expect(R"({"add_bos_token": "yes"})", "add_bos_token");
  expect(R"({"add_bos_token": true, "bos_token": "<nope>"})", "<nope>");
  expect(R"({"chat_template": 5})", "chat_template");
  expect(R"({"added_tokens_decoder": {"x": {"content": "a"}}})", "added_tokens_decoder[\"x\"]");
  expect(R"({"bos_token": )", "not valid JSON");
}

TEST_F(BadTokenizerFile, TruncatedOrGarbageSentencePieceModel) {
  const std::string full = slurp(llama2_dir() + "/tokenizer.model");
  expect_error("tokenizer.model", full.substr(0, full.size() / 3), {"tokenizer.model", "SentencePiece"});
  expect_error("tokenizer.model", "not a protobuf at all", {"tokenizer.model"});
  expect_error("tokenizer.model", "", {"tokenizer.model"});
}

TEST_F(BadTokenizerFile, MissingFiles) {
  EXPECT_THROW(Tokenizer::from_pretrained(dir_.path()), Error);  // empty folder
  EXPECT_THROW(Tokenizer::from_pretrained(dir_.file("nothing-here")), Error);
}

TEST(TokenizerBadInput, IdsOutsideTheVocabularyAreErrors) {
  for (const Tokenizer* t : {&llama2_json(), &llama2_model()}) {
    for (const int32_t id : {32000, -1, 1 << 30}) {
      const std::vector<int32_t> ids = {15043, id, 3186};
      try {
        t->decode(ids);
        ADD_FAILURE() << id;
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(std::to_string(id)), std::string::npos) << e.what();
      }
      EXPECT_THROW(t->decode(ids, true), Error);
      EXPECT_THROW(t->id_to_piece(id), Error);
    }
  }
}

// Hugging Face only ever sees Unicode strings, so there is no HF behaviour to
// follow for invalid UTF-8: encode refuses it, naming the byte and offset.
TEST(TokenizerBadInput, InvalidUtf8TextIsAnError) {
  const std::vector<std::string> bad = {"\xFF", "abc\xC3", "a\xC3(b", "\xED\xA0\x80", "\xC0\xAF", "\xF4\x90\x80\x80", "ok \xF0\x9F\xA6"};
  for (const Tokenizer* t : {&llama2_json(), &llama2_model()}) {
    for (const std::string& s : bad) {
      try {
        t->encode(s);
        ADD_FAILURE() << "accepted invalid UTF-8";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("UTF-8"), std::string::npos) << e.what();
      }
    }
  }
  try {
    llama2_json().encode("abc\xC3(");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("0xC3 at offset 3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace jetmoe::testing
