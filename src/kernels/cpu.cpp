#include "kernels/cpu.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

#include "core/error.h"

namespace tq {

namespace {

uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((uint64_t)hi << 32) | lo;
}

// Linux asks a process to request the 8 KiB AMX tile state before its first use.
bool request_amx_permission() {
  constexpr long ARCH_GET_XCOMP_PERM = 0x1022, ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
  if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return false;
  uint64_t granted = 0;
  if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &granted) != 0) return false;
  return granted & (1ull << XFEATURE_XTILEDATA);
}

struct Features {
  bool avx2 = false, avx512 = false, amx = false;
};

Features detect() {
  Features f;
  uint32_t a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29), avx = c & (1u << 28);
  if (!osxsave || !avx) return f;
  uint64_t xcr0 = xgetbv0();
  bool os_avx = (xcr0 & 0x6) == 0x6;             // SSE and YMM state
  bool os_avx512 = (xcr0 & 0xe0) == 0xe0;        // opmask, ZMM_Hi256, Hi16_ZMM
  bool os_amx = (xcr0 & 0x60000) == 0x60000;     // XTILECFG, XTILEDATA
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  bool avx2 = b & (1u << 5);
  bool avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31)) && (c & (1u << 11));
  bool amx = (d & (1u << 24)) && (d & (1u << 25));
  f.avx2 = os_avx && avx2 && fma && f16c;
  f.avx512 = f.avx2 && os_avx512 && avx512;
  f.amx = f.avx512 && os_amx && amx && request_amx_permission();
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::automatic: return "automatic";
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::amx: return "amx";
  }
  return "?";
}

Isa parse_isa(std::string_view name) {
  for (Isa i : {Isa::automatic, Isa::scalar, Isa::avx2, Isa::avx512, Isa::amx})
    if (name == isa_name(i)) return i;
  bad_input("unknown instruction-set path '{}' (expected scalar, avx2, avx512 or amx)", name);
}

bool isa_supported(Isa isa) {
  const Features& f = features();
  switch (isa) {
    case Isa::automatic:
    case Isa::scalar: return true;
    case Isa::avx2: return f.avx2;
    case Isa::avx512: return f.avx512;
    case Isa::amx: return f.amx;
  }
  return false;
}

Isa best_isa() {
  for (Isa i : {Isa::amx, Isa::avx512, Isa::avx2})
    if (isa_supported(i)) return i;
  return Isa::scalar;
}

Isa resolve_isa(Isa requested) {
  if (requested == Isa::automatic) {
    const char* env = std::getenv("TQ_ISA");
    requested = env && *env ? parse_isa(env) : best_isa();
    if (requested == Isa::automatic) requested = best_isa();
  }
  if (!isa_supported(requested))
    bad_input("this CPU (or OS) does not support the {} kernel path; it supports up to {}", isa_name(requested),
              isa_name(best_isa()));
  return requested;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> v;
  for (Isa i : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::amx})
    if (isa_supported(i)) v.push_back(i);
  return v;
}

}  // namespace tq
