#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace jetmoe {

// How beam search decides that a batch entry is finished, as transformers'
// `early_stopping` (true, false or "never").
enum class EarlyStopping { False, True, Never };

// transformers' GenerationConfig: the same field names and defaults for the
// fields this engine implements. A generation_config.json may hold others
// (transformers_version, ...); they are ignored.
struct GenerationConfig {
  int64_t max_length = 20;                 // prompt + new tokens; max_new_tokens wins when set
  std::optional<int64_t> max_new_tokens;
  int64_t min_length = 0;                  // prompt + new tokens before EOS may appear
  std::optional<int64_t> min_new_tokens;
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 50;
  double top_p = 1.0;
  std::optional<double> min_p;
  double typical_p = 1.0;
  double repetition_penalty = 1.0;
  int64_t no_repeat_ngram_size = 0;
  int64_t num_beams = 1;
  double length_penalty = 1.0;
  EarlyStopping early_stopping = EarlyStopping::False;
  int64_t num_return_sequences = 1;
  std::vector<int32_t> eos_token_id;
  std::optional<int32_t> pad_token_id;
  std::optional<int32_t> bos_token_id;
  std::vector<std::string> stop_strings;
  std::optional<uint64_t> seed;  // sampling; unset = a fresh random seed per call

  // Fields of `json_text` override this config's (absent fields keep their
  // value, explicit null resets an optional). `source` names the file.
  void update_from_json(const std::string& json_text, const std::string& source);
  static GenerationConfig from_json(const std::string& json_text, const std::string& source = "generation_config.json");
  // The model folder's generation_config.json when there is one, defaults otherwise.
  static GenerationConfig from_model_folder(const std::string& folder);
  // Throws Error naming the first invalid field and the accepted range.
  void validate() const;
  std::string to_json() const;
};

}  // namespace jetmoe
