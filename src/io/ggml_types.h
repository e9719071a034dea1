// ggml tensor types as a table, one row per type (block size, bytes per
// block, conversion to and from f32), the way ggml describes its formats.
// The block formats themselves are in io/ggml_quants.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"  // GgmlType, GgmlTypeInfo

namespace tq {

// The row of a type, or null for an unknown type id.
const GgmlTypeInfo* ggml_type_info(uint32_t type);
// The id of a type by its name ("Q4_K", case-insensitive); bad_input naming the written types otherwise.
uint32_t ggml_type_from_name(const std::string& name);

}  // namespace tq
