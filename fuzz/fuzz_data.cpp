// libFuzzer target: data specs and the files they name. The input is a spec
// ("FILE?from=0.5&limit=3", "sst2:FILE?offset=2", ...) up to the first newline,
// then the file; the spec's path is replaced by that file. Text is read as
// sequences with a byte tokenizer, SST-2 as sentences. Any input ends in
// sequences or a tq::Error.
#include <string_view>

#include "core/error.h"
#include "fuzz_util.h"
#include "nn/random_model.h"
#include "text/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const tq::Tokenizer tok = tq::byte_tokenizer(300);
  std::string_view in = tq::fuzz::as_text(data, size);
  size_t nl = std::min(in.find('\n'), in.size());
  std::string path = tq::fuzz::put_file("data", nl < in.size() ? in.substr(nl + 1) : std::string_view());
  try {
    tq::DataSpec spec = tq::parse_data_spec(std::string(in.substr(0, nl)));
    tq::slice_range(1000, spec);
    spec.path = path;
    if (spec.kind == "sst2") {
      tq::read_sst2(path, spec);
    } else if (spec.kind == "text") {
      tq::text_sequences(tok, spec);
    }
  } catch (const tq::Error&) {
  }
  return 0;
}
