# lit configuration of the compiler tests. Run through CMake (check-compiler
# target or the `compiler-lit` CTest test), which configures lit.site.cfg.py.
import os

import lit.formats

config.name = "dscc"
config.test_format = lit.formats.ShTest(not lit_config.isWindows)
config.suffixes = [".mlir"]
config.excludes = ["lit.cfg.py", "lit.site.cfg.py", "CMakeLists.txt", "Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.ds_obj_root, "tests", "compiler")

# Tools: ours first, then FileCheck & co from LLVM.
config.environment["PATH"] = os.pathsep.join(
    [config.ds_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", "")])
config.substitutions.append(("%ds-opt", os.path.join(config.ds_tools_dir, "ds-opt")))
config.substitutions.append(("%dscc", os.path.join(config.ds_tools_dir, "dscc")))
config.substitutions.append(("%ds_src_root", config.ds_src_root))

if config.ds_have_nvrtc:
    config.available_features.add("nvrtc")
if os.path.exists(os.path.join(config.ds_tools_dir, "dscc")):
    config.available_features.add("dscc")
