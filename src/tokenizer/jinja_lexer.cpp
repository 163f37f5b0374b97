#include "tokenizer/jinja_lexer.h"

#include <cctype>

#include "jetmoe/error.h"

namespace jetmoe::jinja {

std::string where(SourcePos pos) {
  return "chat template line " + std::to_string(pos.line) + ", column " + std::to_string(pos.column) + ": ";
}

namespace {

// jinja2 normalises every newline sequence to \n and, without keep_trailing_newline,
// drops one trailing newline from the source.
std::string normalize(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (std::size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r') {
      out += '\n';
      if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
    } else {
      out += source[k];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      const std::size_t start = find_tag(pos_);
      std::string text = src_.substr(pos_, start - pos_);
      const SourcePos text_pos = pos_at(pos_);
      if (start == src_.size()) {
        emit_text(std::move(text), text_pos);
        pos_ = start;
        break;
      }
      const char kind = src_[start + 1];  // '{', '%' or '#'
      const char sign = start + 2 < src_.size() ? src_[start + 2] : '\0';
      if (sign == '-') {
        rstrip(text);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: drop spaces/tabs between the line start and a block or comment tag.
        const std::size_t line_start = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        const bool at_line_start = line_start > 0 || pos_ == 0 || src_[pos_ - 1] == '\n';
        if (at_line_start && line_start < text.size()) {
          bool all_space = true;
          for (std::size_t k = line_start; k < text.size(); ++k) all_space = all_space && is_space(text[k]);
          if (all_space) text.resize(line_start);
        }
      }
      emit_text(std::move(text), text_pos);
      pos_ = start + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        comment(start);
      } else {
        tag(start, kind == '{');
      }
    }
    tokens_.push_back({TokenType::End, "", pos_at(src_.size())});
    return std::move(tokens_);
  }

 private:
  std::size_t find_tag(std::size_t from) const {
    for (std::size_t k = from; k + 1 < src_.size(); ++k) {
      if (src_[k] == '{' && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    }
    return src_.size();
  }

  SourcePos pos_at(std::size_t offset) {
    // Offsets only grow, so walk forward from the last answer.
    if (offset < cursor_offset_) { cursor_offset_ = 0; cursor_ = {}; }
    for (; cursor_offset_ < offset && cursor_offset_ < src_.size(); ++cursor_offset_) {
      if (src_[cursor_offset_] == '\n') { ++cursor_.line; cursor_.column = 1; }
      else if ((static_cast<unsigned char>(src_[cursor_offset_]) & 0xC0) != 0x80) ++cursor_.column;
    }
    return cursor_;
  }

  static void rstrip(std::string& s) {
    while (!s.empty() && is_space(s.back())) s.pop_back();
  }

  void emit_text(std::string text, SourcePos pos) {
    if (!text.empty()) tokens_.push_back({TokenType::Text, std::move(text), pos});
  }

  void skip_after_tag(bool strip_all, bool trim_newline) {
    if (strip_all) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
    } else if (trim_newline && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;  // trim_blocks
    }
  }

  void comment(std::size_t start) {
    const std::size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) throw Error(where(pos_at(start)) + "comment '{#' is never closed with '#}'");
    const bool minus = end > pos_ && src_[end - 1] == '-';
    pos_ = end + 2;
    skip_after_tag(minus, true);
  }

  void tag(std::size_t start, bool is_var) {
    const SourcePos open_pos = pos_at(start);
    tokens_.push_back({is_var ? TokenType::VarBegin : TokenType::BlockBegin, "", open_pos});
    const char close = is_var ? '}' : '%';
    for (;;) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      if (pos_ >= src_.size()) {
        throw Error(where(open_pos) + (is_var ? "'{{' is never closed with '}}'" : "'{%' is never closed with '%}'"));
      }
      const char c = src_[pos_];
      // The end marker wins over operators: "-}}" always means whitespace control.
      if ((c == '-' || c == '+') && pos_ + 2 < src_.size() + 0 && src_[pos_ + 1] == close && src_[pos_ + 2] == '}') {
        tokens_.push_back({is_var ? TokenType::VarEnd : TokenType::BlockEnd, "", pos_at(pos_)});
        pos_ += 3;
        skip_after_tag(c == '-', false);
        return;
      }
      if (c == close && pos_ + 1 < src_.size() && src_[pos_ + 1] == '}') {
        tokens_.push_back({is_var ? TokenType::VarEnd : TokenType::BlockEnd, "", pos_at(pos_)});
        pos_ += 2;
        skip_after_tag(false, !is_var);
        return;
      }
      expression_token();
    }
  }

  void expression_token() {
    const SourcePos p = pos_at(pos_);
    const char c = src_[pos_];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      std::size_t e = pos_;
      while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
      tokens_.push_back({TokenType::Name, src_.substr(pos_, e - pos_), p});
      pos_ = e;
      return;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      std::size_t e = pos_;
      while (e < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
      bool is_float = false;
      if (e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
        is_float = true;
        ++e;
        while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
      }
      if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
        std::size_t k = e + 1;
        if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
        if (k < src_.size() && std::isdigit(static_cast<unsigned char>(src_[k]))) {
          is_float = true;
          e = k;
          while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
        }
      }
      std::string digits;
      for (std::size_t k = pos_; k < e; ++k)
        if (src_[k] != '_') digits += src_[k];
      tokens_.push_back({is_float ? TokenType::Float : TokenType::Integer, digits, p});
      pos_ = e;
      return;
    }
    if (c == '\'' || c == '"') {
      string_literal(p);
      return;
    }
    static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                       "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "="};
    for (const char* op : kOps) {
      const std::string_view sv(op);
      if (src_.compare(pos_, sv.size(), sv) == 0) {
        tokens_.push_back({TokenType::Operator, std::string(sv), p});
        pos_ += sv.size();
        return;
      }
    }
    throw Error(where(p) + "unexpected character '" + std::string(1, c) + "' inside a tag");
  }

  // Python string-literal escapes, as jinja2 decodes them (unknown escapes stay verbatim).
  void string_literal(SourcePos p) {
    const char quote = src_[pos_];
    std::string out;
    std::size_t k = pos_ + 1;
    for (;;) {
      if (k >= src_.size()) throw Error(where(p) + "string literal is never closed");
      const char c = src_[k];
      if (c == quote) break;
      if (c != '\\' || k + 1 >= src_.size()) { out += c; ++k; continue; }
      const char e = src_[k + 1];
      k += 2;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '0': out += '\0'; break;
        case '\n': break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          const std::size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (k + n > src_.size()) throw Error(where(p) + "truncated \\" + std::string(1, e) + " escape in string literal");
          const unsigned long cp = std::stoul(src_.substr(k, n), nullptr, 16);
          k += n;
          append_utf8(out, cp);
          break;
        }
        default: out += '\\'; out += e; break;
      }
    }
    tokens_.push_back({TokenType::String, std::move(out), p});
    pos_ = k + 1;
  }

  static void append_utf8(std::string& out, unsigned long cp) {
    if (cp < 0x80) out += static_cast<char>(cp);
    else if (cp < 0x800) { out += static_cast<char>(0xC0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string src_;
  std::size_t pos_ = 0;
  std::vector<Token> tokens_;
  std::size_t cursor_offset_ = 0;
  SourcePos cursor_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(normalize(source)).run(); }

}  // namespace jetmoe::jinja
