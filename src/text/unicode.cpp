#include "text/unicode.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include <vector>

#include "core/error.h"

namespace tq {

char32_t next_char(std::string_view s, size_t& i) {
  uint8_t c = (uint8_t)s[i];
  int len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
  if (len == 1) {
    i++;
    return c;
  }
  if (len == 0 || i + len > s.size()) {
    i++;
    return 0xfffd;
  }
  char32_t cp = c & (0x7f >> len);
  for (int k = 1; k < len; k++) {
    uint8_t cc = (uint8_t)s[i + k];
    if ((cc & 0xc0) != 0x80) {
      i++;
      return 0xfffd;
    }
    cp = cp << 6 | (cc & 0x3f);
  }
  static const char32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    i++;
    return 0xfffd;
  }
  i += len;
  return cp;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += (char)c;
  } else if (c < 0x800) {
    out += (char)(0xc0 | c >> 6);
    out += (char)(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    out += (char)(0xe0 | c >> 12);
    out += (char)(0x80 | (c >> 6 & 0x3f));
    out += (char)(0x80 | (c & 0x3f));
  } else {
    out += (char)(0xf0 | c >> 18);
    out += (char)(0x80 | (c >> 12 & 0x3f));
    out += (char)(0x80 | (c >> 6 & 0x3f));
    out += (char)(0x80 | (c & 0x3f));
  }
}

static bool in_category(char32_t c, uint32_t mask) { return (U_GET_GC_MASK((UChar32)c) & mask) != 0; }

bool is_letter(char32_t c) { return in_category(c, U_GC_L_MASK); }
bool is_number(char32_t c) { return in_category(c, U_GC_N_MASK); }
bool is_white_space(char32_t c) { return u_hasBinaryProperty((UChar32)c, UCHAR_WHITE_SPACE); }
bool is_punctuation(char32_t c) { return in_category(c, U_GC_P_MASK); }
bool is_other(char32_t c) { return in_category(c, U_GC_C_MASK); }
bool is_space_separator(char32_t c) { return in_category(c, U_GC_ZS_MASK); }
bool is_nonspacing_mark(char32_t c) { return in_category(c, U_GC_MN_MASK); }

static std::u32string from_utf16(const UChar* s, int32_t n) {
  std::u32string out;
  for (int32_t i = 0; i < n;) {
    UChar32 c;
    U16_NEXT(s, i, n, c);
    out += (char32_t)c;
  }
  return out;
}

std::u32string to_lower(char32_t c) {
  if (c < 0x80) return std::u32string(1, c >= 'A' && c <= 'Z' ? c + 32 : c);
  UChar src[2] = {0, 0}, dst[8];
  int32_t n = 0;
  UBool err_flag = false;
  U16_APPEND((UChar*)src, n, 2, (UChar32)c, err_flag);
  UErrorCode err = U_ZERO_ERROR;
  int32_t m = u_strToLower(dst, 8, src, n, "", &err);
  if (U_FAILURE(err) || err_flag) return std::u32string(1, c);
  return from_utf16(dst, m);
}

std::u32string nfd(char32_t c) {
  if (c < 0xc0) return std::u32string(1, c);  // nothing below U+00C0 decomposes
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* n = unorm2_getNFDInstance(&err);
  if (U_FAILURE(err)) run_failed("ICU has no NFD data: {}", u_errorName(err));
  UChar buf[32];
  int32_t len = unorm2_getDecomposition(n, (UChar32)c, buf, 32, &err);
  if (U_FAILURE(err) || len < 0) return std::u32string(1, c);
  return from_utf16(buf, len);
}

std::string nfc(std::string_view utf8) {
  bool ascii = true;
  for (char ch : utf8) ascii = ascii && (uint8_t)ch < 0x80;
  if (ascii || utf8.size() > (size_t)INT32_MAX / 4) return std::string(utf8);  // ASCII is NFC already
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* n = unorm2_getNFCInstance(&err);
  if (U_FAILURE(err)) run_failed("ICU has no NFC data: {}", u_errorName(err));
  std::vector<UChar> src(utf8.size() + 1), dst;
  int32_t len = 0;
  u_strFromUTF8(src.data(), (int32_t)src.size(), &len, utf8.data(), (int32_t)utf8.size(), &err);
  if (U_FAILURE(err)) return std::string(utf8);  // ill-formed UTF-8
  dst.resize((size_t)len * 3 + 16);  // NFC grows UTF-16 text by at most 3×
  int32_t out_len = unorm2_normalize(n, src.data(), len, dst.data(), (int32_t)dst.size(), &err);
  if (U_FAILURE(err)) run_failed("ICU NFC failed: {}", u_errorName(err));
  std::string out(utf8.size() * 2 + 16, '\0');
  int32_t bytes = 0;
  err = U_ZERO_ERROR;
  u_strToUTF8(out.data(), (int32_t)out.size(), &bytes, dst.data(), out_len, &err);
  if (err == U_BUFFER_OVERFLOW_ERROR) {
    out.resize(bytes);
    err = U_ZERO_ERROR;
    u_strToUTF8(out.data(), (int32_t)out.size(), &bytes, dst.data(), out_len, &err);
  }
  if (U_FAILURE(err)) run_failed("ICU NFC failed: {}", u_errorName(err));
  out.resize(bytes);
  return out;
}

}  // namespace tq
