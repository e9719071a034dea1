// tquant: make transformer models small and fast without losing accuracy.
#include <fmt/format.h>

#include "cli/common.h"
#include "core/error.h"
#include "core/ranks.h"
#include "core/threads.h"
#include "io/atomic_file.h"

namespace tq::cli {

void add_common(CLI::App* cmd, Common& c) {
  cmd->add_option("-t,--threads", c.threads, "threads (default: all cores)");
  cmd->add_option("--tokenizer", c.tokenizer, "llama2.c tokenizer file (for .bin checkpoints)");
}

static LoadOptions load_options(const Common& c) {
  LoadOptions opt{c.tokenizer};
  opt.lazy = c.lazy;
  return opt;
}

Model load(const std::string& path, const Common& c) {
  set_threads(c.threads);
  return load_model(path, load_options(c));
}

Loaded load_with_plan(const std::string& path, const Common& c) {
  set_threads(c.threads);
  return tq::load_with_plan(path, load_options(c));
}

void write_json(const std::string& dest, const nlohmann::json& j) {
  std::string s = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (dest == "-") {
    fmt::print("{}", s);
  } else {
    write_file_atomic(dest, s);
  }
}

}  // namespace tq::cli

// Which rank failed, when there are several.
static std::string where() {
  return tq::ranks::size() > 1 ? fmt::format(" (rank {} of {})", tq::ranks::rank(), tq::ranks::size()) : "";
}

static int run(int argc, char** argv) {
  CLI::App app{"tquant: quantize transformer models to 8, 6 or 4 bits and run them fast on a CPU", "tquant"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "tquant 0.1");
  tq::cli::register_inspect(app);
  tq::cli::register_run(app);
  tq::cli::register_eval(app);
  tq::cli::register_quantize(app);
  tq::cli::register_diagnose(app);
  tq::cli::register_export(app);
  tq::cli::register_stress(app);
  tq::cli::register_generate(app);
  tq::cli::register_bench(app);
  tq::cli::register_train(app);
  tq::cli::register_finetune(app);
  tq::cli::register_quanttune(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (const tq::Error& e) {
    fmt::print(tq::ranks::errors(), "tquant: error{}: {}\n", where(), e.what());
    return e.exit_code;
  } catch (const nlohmann::json::exception& e) {
    fmt::print(tq::ranks::errors(), "tquant: error{}: bad JSON: {}\n", where(), e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    fmt::print(tq::ranks::errors(), "tquant: error{}: out of memory\n", where());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(tq::ranks::errors(), "tquant: error{}: {}\n", where(), e.what());
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  tq::ranks::init(&argc, &argv);
  tq::remove_temp_outputs_on_signal();  // SIGINT, SIGTERM: no temporary output is left behind
  int rc = run(argc, argv);
  if (rc != 0) tq::ranks::abort_all(rc);  // the others would wait for this rank at their next gather
  tq::ranks::finalize();
  return rc;
}
