// Files embedded into the binary at build time (cmake/Embed.cmake): SQLite
// migrations, Redis scripts.
#ifndef RETRACED_STORE_EMBEDDED_H_
#define RETRACED_STORE_EMBEDDED_H_

#include <string_view>
#include <vector>

namespace retraced {

struct EmbeddedFile {
  std::string_view name;  // file name, e.g. "0001_initial.sql"
  std::string_view text;
  std::string_view sha1;  // of text, in hex: the name Redis gives a script it loads
};

// src/store/sqlite/migrations/*.sql, sorted by name.
const std::vector<EmbeddedFile>& SqliteMigrationFiles();

// src/store/redis/lua/*.lua, sorted by name.
const std::vector<EmbeddedFile>& RedisScriptFiles();

}  // namespace retraced

#endif  // RETRACED_STORE_EMBEDDED_H_
