#include "sql_split.h"

#include <array>
#include <cctype>

namespace pgboot {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
// PostgreSQL treats every byte with the high bit set as a letter.
bool IsIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsIdentCont(char c) { return IsIdentStart(c) || IsDigit(c) || c == '$'; }
bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsNoCase(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != lower[i]) return false;
  }
  return true;
}

// Returns the position after the quote closing a string or identifier whose body starts
// at `i`, or npos. A doubled quote is an escaped quote; with `backslash`, so is \'.
size_t SkipQuoted(std::string_view s, size_t i, char quote, bool backslash) {
  for (; i < s.size(); ++i) {
    if (backslash && s[i] == '\\') {
      ++i;
    } else if (s[i] == quote) {
      if (i + 1 < s.size() && s[i + 1] == quote) {
        ++i;
      } else {
        return i + 1;
      }
    }
  }
  return std::string_view::npos;
}

// Returns the position after the */ that closes the comment opening at `i`, or npos.
size_t SkipBlockComment(std::string_view s, size_t i) {
  int depth = 0;
  while (i + 1 < s.size()) {
    if (s[i] == '/' && s[i + 1] == '*') {
      ++depth;
      i += 2;
    } else if (s[i] == '*' && s[i + 1] == '/') {
      i += 2;
      if (--depth == 0) return i;
    } else {
      ++i;
    }
  }
  return std::string_view::npos;
}

// Returns the length of the $tag$ delimiter at `i` (s[i] == '$'), or 0 when there is none.
// Tags follow identifier rules without '$' and cannot start with a digit, so $1 is a parameter.
size_t DollarTagLength(std::string_view s, size_t i) {
  size_t j = i + 1;
  if (j < s.size() && IsIdentStart(s[j])) {
    while (j < s.size() && (IsIdentStart(s[j]) || IsDigit(s[j]))) ++j;
  }
  return j < s.size() && s[j] == '$' ? j + 1 - i : 0;
}

// Turns byte offsets into file lines; queries must not go backwards.
class LineCursor {
 public:
  LineCursor(std::string_view s, int first_line) : s_(s), line_(first_line) {}
  void SeekTo(size_t offset) {
    for (; pos_ < offset; ++pos_) {
      if (s_[pos_] == '\n') {
        ++line_;
        line_start_ = pos_ + 1;
      }
    }
  }
  int line() const { return line_; }
  int column() const {
    int column = 1;
    for (size_t i = line_start_; i < pos_; ++i) column += !IsContinuationByte(s_[i]);
    return column;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
  int line_;
  size_t line_start_ = 0;
};

// psql's heuristic for SQL-standard routine bodies: in a statement that starts with
// CREATE [OR REPLACE] FUNCTION|PROCEDURE, BEGIN (and CASE inside it) opens a block
// that END closes, and ';' inside a block does not end the statement.
class AtomicBodyTracker {
 public:
  void Word(std::string_view w, int paren_depth) {
    if (count_ < lead_.size()) {
      for (std::string_view k : {"create", "function", "procedure", "or", "replace"}) {
        if (EqualsNoCase(w, k)) lead_[count_] = k[0];
      }
    }
    ++count_;
    bool routine = lead_[0] == 'c' &&
                   (lead_[1] == 'f' || lead_[1] == 'p' ||
                    (lead_[1] == 'o' && lead_[2] == 'r' && (lead_[3] == 'f' || lead_[3] == 'p')));
    if (!routine || paren_depth != 0) return;
    if (EqualsNoCase(w, "begin")) {
      ++depth_;
    } else if (EqualsNoCase(w, "case")) {
      if (depth_ > 0) ++depth_;
    } else if (EqualsNoCase(w, "end")) {
      if (depth_ > 0) --depth_;
    }
  }
  bool inside() const { return depth_ > 0; }

 private:
  std::array<char, 4> lead_{};
  size_t count_ = 0;
  int depth_ = 0;
};

// The whitespace-separated word at *pos (advanced past it), or "" at the end.
std::string_view NextWord(std::string_view s, size_t* pos) {
  size_t i = *pos;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  size_t end = i;
  while (end < s.size() && !std::isspace(static_cast<unsigned char>(s[end]))) ++end;
  *pos = end;
  return s.substr(i, end - i);
}

}  // namespace

Result<std::vector<SqlStatement>> SplitSql(std::string_view s, int first_line, int* error_line) {
  constexpr size_t npos = std::string_view::npos;
  std::vector<SqlStatement> out;
  LineCursor cursor(s, first_line);
  auto unterminated = [&](size_t start, const char* what) {
    cursor.SeekTo(start);
    if (error_line != nullptr) *error_line = cursor.line();
    return Status::InvalidFiles(std::string("unterminated ") + what + " starting at line " +
                                std::to_string(cursor.line()));
  };

  bool in_statement = false;
  size_t start = 0;
  int paren_depth = 0;
  AtomicBodyTracker atomic;
  auto finish = [&](size_t end) {
    if (!in_statement) return;
    while (end > start && IsSpace(s[end - 1])) --end;
    SqlStatement st;
    st.text = s.substr(start, end - start);
    st.offset = start;
    cursor.SeekTo(start);
    st.line = cursor.line();
    st.column = cursor.column();
    st.is_transaction_control = IsTransactionControl(st.text);
    out.push_back(std::move(st));
    in_statement = false;
    paren_depth = 0;
    atomic = AtomicBodyTracker();
  };

  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    char next = i + 1 < s.size() ? s[i + 1] : '\0';
    if (IsSpace(c)) {
      ++i;
      continue;
    }
    if (c == '-' && next == '-') {
      i = s.find('\n', i);
      if (i == npos) i = s.size();
      continue;
    }
    if (c == '/' && next == '*') {
      size_t end = SkipBlockComment(s, i);
      if (end == npos) return unterminated(i, "/* comment");
      i = end;
      continue;
    }
    if (c == ';' && paren_depth == 0 && !atomic.inside()) {
      finish(i);
      ++i;
      continue;
    }
    if (!in_statement) {
      in_statement = true;
      start = i;
    }
    if (c == '\'') {
      size_t end = SkipQuoted(s, i + 1, '\'', false);
      if (end == npos) return unterminated(i, "quoted string");
      i = end;
    } else if (c == '"') {
      size_t end = SkipQuoted(s, i + 1, '"', false);
      if (end == npos) return unterminated(i, "quoted identifier");
      i = end;
    } else if (c == '$' && IsDigit(next)) {
      for (++i; i < s.size() && IsDigit(s[i]);) ++i;
    } else if (c == '$' && DollarTagLength(s, i) > 0) {
      std::string_view tag = s.substr(i, DollarTagLength(s, i));
      size_t close = s.find(tag, i + tag.size());
      if (close == npos) return unterminated(i, "dollar-quoted string");
      i = close + tag.size();
    } else if (IsIdentStart(c)) {
      size_t end = i;
      while (end < s.size() && IsIdentCont(s[end])) ++end;
      std::string_view word = s.substr(i, end - i);
      if ((word == "E" || word == "e") && end < s.size() && s[end] == '\'') {
        size_t close = SkipQuoted(s, end + 1, '\'', true);
        if (close == npos) return unterminated(i, "quoted string");
        end = close;
      } else {
        atomic.Word(word, paren_depth);
      }
      i = end;
    } else if (IsDigit(c)) {
      // A number with any suffix (1e5, 0x1F, 1_000), but never a '$' that may open a quote.
      while (i < s.size() && (IsIdentStart(s[i]) || IsDigit(s[i]) || s[i] == '.')) ++i;
    } else {
      if (c == '(') ++paren_depth;
      if (c == ')' && paren_depth > 0) --paren_depth;
      ++i;
    }
  }
  finish(s.size());
  return out;
}

bool IsTransactionControl(std::string_view statement) {
  // The first three words, skipping blanks and comments between them.
  std::array<std::string_view, 3> w;
  size_t i = 0;
  for (auto& word : w) {
    while (i < statement.size()) {
      if (IsSpace(statement[i])) {
        ++i;
      } else if (statement.substr(i, 2) == "--") {
        i = statement.find('\n', i);
        if (i == std::string_view::npos) i = statement.size();
      } else if (statement.substr(i, 2) == "/*") {
        i = SkipBlockComment(statement, i);
        if (i == std::string_view::npos) i = statement.size();
      } else {
        break;
      }
    }
    size_t end = i;
    while (end < statement.size() && IsIdentStart(statement[end])) ++end;
    word = statement.substr(i, end - i);
    if (word.empty()) break;
    i = end;
  }
  if (EqualsNoCase(w[0], "begin")) return !EqualsNoCase(w[1], "atomic");
  if (EqualsNoCase(w[0], "start") || EqualsNoCase(w[0], "prepare")) {
    return EqualsNoCase(w[1], "transaction");
  }
  if (EqualsNoCase(w[0], "commit") || EqualsNoCase(w[0], "end") || EqualsNoCase(w[0], "abort")) {
    return true;
  }
  if (EqualsNoCase(w[0], "rollback")) {
    // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] x stays inside the transaction.
    bool noise = EqualsNoCase(w[1], "work") || EqualsNoCase(w[1], "transaction");
    return !EqualsNoCase(w[noise ? 2 : 1], "to");
  }
  return false;
}

std::pair<int, int> PositionToLineColumn(const SqlStatement& st, int char_position) {
  int line = st.line;
  int column = st.column;
  int chars = 1;
  for (size_t i = 0; i < st.text.size() && chars < char_position; ++i) {
    if (IsContinuationByte(st.text[i])) continue;
    if (st.text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
    ++chars;
  }
  return {line, column};
}

std::string LeadingKeywords(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (!(c >= 'A' && c <= 'Z') && c != ' ' && c != '\t') break;
    out.push_back(c);
  }
  std::string_view t = out;
  while (!t.empty() && IsSpace(t.front())) t.remove_prefix(1);
  while (!t.empty() && IsSpace(t.back())) t.remove_suffix(1);
  return std::string(t);
}

// Word by word, without a copy of the statement (it may be the whole file).
bool IsCopyFromStdin(std::string_view statement) {
  size_t pos = 0;
  if (!EqualsNoCase(NextWord(statement, &pos), "copy")) return false;
  bool after_from = false;
  for (std::string_view w = NextWord(statement, &pos); !w.empty(); w = NextWord(statement, &pos)) {
    if (after_from && w.size() >= 5 && EqualsNoCase(w.substr(0, 5), "stdin")) return true;
    after_from = EqualsNoCase(w, "from");
  }
  return false;
}

}  // namespace pgboot
