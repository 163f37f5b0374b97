#include "tokenizer/normalizer.h"

namespace jetmoe::tokenizer_detail {

void replace_all(std::string& s, std::string_view pattern, std::string_view content) {
  if (pattern.empty() || s.find(pattern) == std::string::npos) return;
  std::string out;
  out.reserve(s.size() + s.size() / 2);
  size_t pos = 0;
  for (size_t hit; (hit = s.find(pattern, pos)) != std::string::npos; pos = hit + pattern.size()) {
    out.append(s, pos, hit - pos);
    out.append(content);
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

std::string normalize(const std::vector<NormalizerStep>& steps, std::string_view text) {
  std::string s(text);
  for (const NormalizerStep& step : steps) {
    switch (step.kind) {
      case NormalizerStep::Kind::Prepend:
        if (!s.empty()) s.insert(0, step.text);
        break;
      case NormalizerStep::Kind::Replace:
        replace_all(s, step.text, step.content);
        break;
    }
  }
  return s;
}

}  // namespace jetmoe::tokenizer_detail
