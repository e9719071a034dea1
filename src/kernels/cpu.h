// Which instruction-set path a kernel runs, chosen at run time from the CPU
// and the OS (cpuid + xgetbv; AMX also needs the kernel's permission).
//
//   scalar  portable C++ on the packed layouts (any x86-64)
//   avx2    AVX2 + FMA + F16C
//   avx512  AVX-512 F/BW/VL/DQ + VNNI (Cascade Lake, Ice Lake, Zen 4 and later)
//   amx     avx512 + AMX-TILE/AMX-INT8 with XTILEDATA permission granted
//
// `automatic` means: the TQ_ISA environment variable if set (scalar, avx2,
// avx512, amx), else the best the machine supports. Asking for a path the
// machine lacks is bad input, never a silent fallback.
#pragma once
#include <string_view>
#include <vector>

namespace tq {

enum class Isa { automatic, scalar, avx2, avx512, amx };

const char* isa_name(Isa isa);
Isa parse_isa(std::string_view name);  // bad_input on an unknown name
bool isa_supported(Isa isa);
Isa best_isa();
// automatic → TQ_ISA or best_isa(); anything else is checked for support.
Isa resolve_isa(Isa requested);
// Every path this machine runs, scalar first.
std::vector<Isa> supported_isas();

}  // namespace tq
