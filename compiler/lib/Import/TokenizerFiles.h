//===- TokenizerFiles.h - Tokenizer and generation metadata -----*- C++ -*-===//
//
// Private helper of the importer: reads tokenizer.json, tokenizer_config.json,
// chat_template.jinja (optional) and generation_config.json (optional) into
// the ModelSpec's TokenizerSpec and GenerationSpec.
//
//===----------------------------------------------------------------------===//

#ifndef DS_LIB_IMPORT_TOKENIZERFILES_H
#define DS_LIB_IMPORT_TOKENIZERFILES_H

#include <string>

#include "JsonFields.h"
#include "ds/Import/ModelSpec.h"

namespace ds {

/// `dir` is the absolute model directory, `config` its config.json fields
/// (fallback for eos/bos ids). Unless `required`, a directory with neither
/// tokenizer.json nor tokenizer_config.json gives a spec without a tokenizer
/// (eos ids from config.json, a warning); one file without the other is
/// still an error.
Status readTokenizerFiles(const std::string &dir, const JsonFields &config, ModelSpec &spec,
                          bool required = true);

}  // namespace ds

#endif  // DS_LIB_IMPORT_TOKENIZERFILES_H
