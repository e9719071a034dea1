#include "cli/common.h"
namespace tq::cli {
void register_bench(CLI::App& app) {}
}
